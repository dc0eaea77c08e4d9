/**
 * An OpenFeature provider over Flux Keys entitlements and plans:
 * - boolean flag `<name>`: whether the org (the `targetingKey`) is entitled to `<name>`, from the
 *   context's `entitlements` when it came from `evaluationContextFor(ctx)` (no I/O), else from the
 *   database (plan + org overrides);
 * - number flags from the org's plan: `quota.limit`, and `rate_limit.<window>.limit` per window;
 * - string flag `plan`: the org's plan id.
 * With `prefix`, only flags starting with it are answered (`entitlement.sso` → `sso`); other
 * flags are "not found", so that a MultiProvider moves on to the next provider.
 */
import type { Flux, Plan } from "@flux-keys/core";
import {
  type EvaluationContext,
  FlagNotFoundError,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
  StandardResolutionReasons,
  TargetingKeyMissingError,
} from "@openfeature/server-sdk";

export interface FluxEntitlementProviderOptions {
  /** Answer only flags with this prefix (stripped before the look-up). @default '' (every flag) */
  prefix?: string;
}

export class FluxEntitlementProvider implements Provider {
  readonly metadata = { name: "flux-keys-entitlements" } as const;
  readonly runsOn = "server" as const;
  private readonly prefix: string;

  constructor(
    private readonly flux: Flux,
    options: FluxEntitlementProviderOptions = {},
  ) {
    this.prefix = options.prefix ?? "";
  }

  async resolveBooleanEvaluation(
    flagKey: string,
    _defaultValue: boolean,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<boolean>> {
    const name = this.nameOf(flagKey);
    const orgId = orgOf(context);
    const known = context.entitlements;
    if (Array.isArray(known) && context.orgId === orgId) {
      return { value: known.includes(name), reason: StandardResolutionReasons.TARGETING_MATCH };
    }
    return {
      value: await this.flux.entitlements.check(orgId, name),
      reason: StandardResolutionReasons.TARGETING_MATCH,
    };
  }

  async resolveNumberEvaluation(
    flagKey: string,
    _defaultValue: number,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<number>> {
    const name = this.nameOf(flagKey);
    const plan = await this.planOf(context);
    const value = plan === null ? undefined : limitOf(plan, name);
    if (value === undefined) throw new FlagNotFoundError(`No plan limit '${name}' for this org.`);
    return { value, reason: StandardResolutionReasons.TARGETING_MATCH, variant: plan?.id };
  }

  async resolveStringEvaluation(
    flagKey: string,
    _defaultValue: string,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<string>> {
    if (this.nameOf(flagKey) !== "plan") throw new FlagNotFoundError(`No string flag '${flagKey}'.`);
    const plan = await this.planOf(context);
    if (plan === null) throw new FlagNotFoundError("The org has no plan.");
    return { value: plan.id, reason: StandardResolutionReasons.TARGETING_MATCH };
  }

  async resolveObjectEvaluation<T extends JsonValue>(flagKey: string): Promise<ResolutionDetails<T>> {
    throw new FlagNotFoundError(`No object flag '${flagKey}'.`);
  }

  private nameOf(flagKey: string): string {
    if (!flagKey.startsWith(this.prefix) || flagKey.length === this.prefix.length) {
      throw new FlagNotFoundError(`Not a Flux Keys flag: '${flagKey}'.`);
    }
    return flagKey.slice(this.prefix.length);
  }

  private async planOf(context: EvaluationContext): Promise<Plan | null> {
    const orgId = orgOf(context);
    const planId =
      typeof context.plan === "string" && context.orgId === orgId
        ? context.plan
        : (await this.flux.orgs.get(orgId)).planId;
    return planId === null ? null : this.flux.plans.get(planId);
  }
}

function orgOf(context: EvaluationContext): string {
  if (typeof context.targetingKey !== "string" || context.targetingKey.length === 0) {
    throw new TargetingKeyMissingError("The evaluation context needs targetingKey = the org id.");
  }
  return context.targetingKey;
}

function limitOf(plan: Plan, name: string): number | undefined {
  if (name === "quota.limit") return plan.quota?.limit;
  const match = /^rate_limit\.(.+)\.limit$/.exec(name);
  if (match) return plan.rateLimits.find((window) => window.name === match[1])?.limit;
  return undefined;
}
