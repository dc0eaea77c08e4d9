/**
 * The portal's JSON API: what one customer (an org, a user, a role) may see and do with the org's
 * keys, usage and audit log. An org sees only its own keys: another org's key id answers exactly
 * like an unknown one. A secret is in the answer that creates or rotates it, and nowhere else.
 * One file past ~400 lines on purpose: every route's visibility rule (roles, org, what admins
 * alone see) sits beside the others, so they can be reviewed together.
 */
import {
  type Actor,
  type ApiKeyInfo,
  displayName,
  FluxError,
  type PortalCustomer,
  type PortalServices,
  type PortalSessionRecord,
  parseInput,
  type ResolvedPortalOptions,
  scopeCovers,
} from "@flux-keys/core";
import { z } from "zod";
import { readJson } from "./http.js";

export interface Identity {
  customer: PortalCustomer;
  /** The link session, when the customer came through one. */
  session: PortalSessionRecord | null;
  /** What the CSRF token is derived from; undefined until the CSRF cookie is set. */
  seed: string | undefined;
}

/** One API call, as the router hands it over. */
export interface ApiRequest {
  identity: Identity;
  customer: PortalCustomer;
  actor: Actor;
  raw: Request;
  query: URLSearchParams;
  /** The decoded `:id` of `/api/keys/:id…`. */
  keyId: string | null;
}

type Display = "active" | "expiring" | "grace" | "revoked" | "expired";

const RANGES = {
  "1h": { ms: 3_600_000, granularity: "minute" },
  "24h": { ms: 86_400_000, granularity: "hour" },
  "7d": { ms: 7 * 86_400_000, granularity: "hour" },
  "30d": { ms: 30 * 86_400_000, granularity: "day" },
} as const;

const GRACE = { none: 0, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000 } as const;

const scopeList = z.array(z.string().max(128)).max(100);
const createSchema = z
  .object({
    name: displayName,
    scopes: scopeList,
    expiresInDays: z.number().int().min(1).max(3650).nullable().optional(),
    expiresAt: z.iso.datetime({ offset: true }).nullable().optional(),
  })
  .strict();
const updateSchema = z.object({ name: displayName.optional(), scopes: scopeList.optional() }).strict();
const rotateSchema = z.object({ gracePeriod: z.enum(["none", "1h", "24h", "7d"]) }).strict();
const revokeSchema = z.object({ reason: z.string().trim().max(500).optional() }).strict();

/**
 * The audit details a member or viewer sees: what changed. Anything else (the role someone signed
 * in with, where a leaked key was found, fields added later) is for admins.
 */
const WHAT_HAPPENED = new Set([
  "name",
  "scopes",
  "from",
  "to",
  "changed",
  "environment",
  "expiresAt",
  "reason",
  "replacedBy",
  "rotatedFrom",
  "sunsetAt",
  "gracePeriodMs",
  "granted",
  "planId",
  "action",
  "reporter",
]);

function whatHappened(details: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details).filter(([name]) => WHAT_HAPPENED.has(name)));
}

export class PortalApi {
  constructor(
    private readonly services: PortalServices,
    private readonly options: ResolvedPortalOptions,
  ) {}

  private get logger() {
    return this.services.logger;
  }

  async me({ customer, identity }: ApiRequest) {
    const org = await this.services.orgs.get(customer.orgId);
    const plan = org.planId === null ? null : await this.services.plans.get(org.planId);
    return {
      // The operator's reason is theirs: the customer sees only that, and since when.
      org: { id: org.id, name: org.name, suspendedAt: org.suspendedAt },
      plan: plan === null ? null : { id: plan.id, name: plan.name },
      user: { id: customer.userId, role: customer.role },
      scopes: this.offeredScopes(plan?.scopes ?? []),
      /** True when the plan restricts nothing and no list was configured: scopes are typed in. */
      freeScopes: (plan?.scopes.length ?? 0) === 0 && this.options.scopes === undefined,
      can: { create: customer.role !== "viewer", manageAll: customer.role === "admin" },
      session: identity.session === null ? null : { expiresAt: identity.session.expiresAt },
    };
  }

  async listKeys({ customer, query }: ApiRequest) {
    const page = await this.services.keys.list({
      orgId: customer.orgId,
      cursor: query.get("cursor"),
      limit: 100,
    });
    return { items: page.items.map((key) => this.view(key, customer)), nextCursor: page.nextCursor };
  }

  async detail(request: ApiRequest) {
    const { customer } = request;
    const key = await this.ownKey(request);
    let grace = null;
    if (key.status === "grace" && key.replacedById !== null && key.sunsetAt !== null) {
      const successor = await this.services.keys.get(key.replacedById);
      const rotatedAt = successor.createdAt;
      const to = new Date(Math.max(this.services.now(), rotatedAt.getTime() + 1));
      const { series } = await this.services.usage.query({
        keyId: key.id,
        from: rotatedAt,
        to,
        granularity: "minute",
        groupBy: ["endpoint"],
      });
      const endpoints = series.map((s) => {
        const last = [...s.points].reverse().find((point) => point.calls > 0);
        return {
          method: s.group.method ?? "",
          endpoint: s.group.endpoint ?? "",
          calls: s.totals.calls,
          errors: s.totals.errors,
          lastCallAt: last?.at ?? null,
        };
      });
      grace = {
        rotatedAt,
        sunsetAt: key.sunsetAt,
        replacedBy: { id: successor.id, start: successor.start, last4: successor.last4 },
        callsSinceRotation: endpoints.reduce((sum, e) => sum + e.calls, 0),
        errorsSinceRotation: endpoints.reduce((sum, e) => sum + e.errors, 0),
        lastUsedAt: key.lastUsedAt,
        endpoints,
        // The clients (address and user agent) that used the old key since the rotation: who and
        // from where, for admins only.
        clients:
          customer.role === "admin"
            ? (await this.services.keys.graceUsage(key.id, { limit: 20 })).clients
            : null,
      };
    }
    // Least privilege: the scopes this key actually used, when narrower than what it holds.
    const suggestion = key.status === "revoked" ? null : await this.services.keys.suggestScopes(key.id);
    const scopeAdvice =
      suggestion !== null && suggestion.used.length > 0 && suggestion.narrower
        ? { suggested: suggestion.suggested, unused: suggestion.unused }
        : null;
    return { key: this.view(key, customer), grace, scopeAdvice };
  }

  async createKey({ customer, actor, raw }: ApiRequest) {
    if (customer.role === "viewer") {
      throw new FluxError("role_denied", { detail: "Viewers cannot create keys." });
    }
    const body = parseInput(createSchema, await readJson(raw), "key");
    this.assertOffered(body.scopes);
    const { key, secret } = await this.services.keys.issue({
      orgId: customer.orgId,
      name: body.name,
      scopes: body.scopes,
      createdBy: actor,
      expiresInDays: body.expiresInDays ?? null,
      expiresAt: body.expiresAt != null ? new Date(body.expiresAt) : null,
      maxActiveKeys: this.options.maxActiveKeys,
    });
    this.logger.info?.(
      { event: "flux.portal.key_created", orgId: customer.orgId, userId: customer.userId, keyId: key.id },
      "flux-keys portal: key created",
    );
    return { key: this.view(key, customer), secret };
  }

  async updateKey(request: ApiRequest) {
    const { customer, actor, raw } = request;
    const key = await this.ownKey(request);
    this.assertCanManage(key, customer);
    const body = parseInput(updateSchema, await readJson(raw), "changes");
    if (body.scopes !== undefined) this.assertOffered(body.scopes);
    const updated = await this.services.keys.update(
      key.id,
      {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.scopes !== undefined ? { scopes: body.scopes } : {}),
      },
      { actor },
    );
    this.logger.info?.(
      { event: "flux.portal.key_updated", orgId: customer.orgId, userId: customer.userId, keyId: key.id },
      "flux-keys portal: key updated",
    );
    return { key: this.view(updated, customer) };
  }

  async rotateKey(request: ApiRequest) {
    const { customer, actor, raw } = request;
    const key = await this.ownKey(request);
    this.assertCanManage(key, customer);
    const body = parseInput(rotateSchema, await readJson(raw), "rotation");
    const rotated = await this.services.keys.rotate(key.id, { gracePeriod: GRACE[body.gracePeriod], actor });
    this.logger.info?.(
      {
        event: "flux.portal.key_rotated",
        orgId: customer.orgId,
        userId: customer.userId,
        keyId: key.id,
        successorId: rotated.key.id,
      },
      "flux-keys portal: key rotated",
    );
    return {
      key: this.view(rotated.key, customer),
      previous: this.view(rotated.previous, customer),
      secret: rotated.secret,
    };
  }

  async revokeKey(request: ApiRequest) {
    const { customer, actor, raw } = request;
    const key = await this.ownKey(request);
    this.assertCanManage(key, customer);
    const body = parseInput(revokeSchema, await readJson(raw), "revocation");
    const revoked = await this.services.keys.revoke(key.id, {
      actor,
      ...(body.reason ? { reason: body.reason } : {}),
    });
    this.logger.info?.(
      { event: "flux.portal.key_revoked", orgId: customer.orgId, userId: customer.userId, keyId: key.id },
      "flux-keys portal: key revoked",
    );
    return { key: this.view(revoked, customer), revokedWith: revoked.revokedWith };
  }

  async usage({ customer, query }: ApiRequest) {
    const rangeName = query.get("range") ?? "24h";
    if (!(rangeName in RANGES)) {
      throw new FluxError("invalid_request", {
        detail: "range must be 1h, 24h, 7d or 30d.",
        extensions: { field: "range" },
      });
    }
    const range = RANGES[rangeName as keyof typeof RANGES];
    const keyParam = query.get("keyId");
    const key = keyParam === null ? null : await this.ownKeyById(keyParam, customer);
    const to = new Date(this.services.now() + 1);
    const from = new Date(to.getTime() - range.ms);
    const scope = key === null ? { orgId: customer.orgId } : { keyId: key.id };
    const usage = this.services.usage;
    const [overall, byEndpoint, byOutcome] = await Promise.all([
      usage.query({ ...scope, from, to, granularity: range.granularity }),
      usage.query({ ...scope, from, to, granularity: range.granularity, groupBy: ["endpoint"] }),
      usage.query({ ...scope, from, to, granularity: range.granularity, groupBy: ["outcome"] }),
    ]);
    const series = overall.series[0];
    // Calls refused once the key was identified (throttled, out of scope, revoked…), per point.
    const refused = new Array<number>(series?.points.length ?? 0).fill(0);
    const outcomes: Record<string, number> = {};
    for (const s of byOutcome.series) {
      outcomes[s.group.outcome as string] = s.totals.calls;
      if (s.group.outcome === "allowed") continue;
      s.points.forEach((point, i) => {
        refused[i] = (refused[i] ?? 0) + point.calls;
      });
    }
    const result = {
      range: rangeName,
      granularity: range.granularity,
      from: overall.from,
      to: overall.to,
      totals: { calls: series?.totals.calls ?? 0, errors: series?.totals.errors ?? 0 },
      /** Calls by outcome (`allowed`, `rate_limited`, …), most first; outcomes without calls left out. */
      outcomes,
      refused: refused.reduce((sum, n) => sum + n, 0),
      points: (series?.points ?? []).map((p, i) => ({
        at: p.at,
        calls: p.calls,
        errors: p.errors,
        refused: refused[i] ?? 0,
      })),
      endpoints: byEndpoint.series.slice(0, 10).map((s) => ({
        method: s.group.method ?? "",
        endpoint: s.group.endpoint ?? "",
        calls: s.totals.calls,
        errors: s.totals.errors,
      })),
      keys: [] as Array<{
        keyId: string;
        name: string | null;
        start: string | null;
        last4: string | null;
        calls: number;
        errors: number;
      }>,
    };
    if (key === null) {
      const top = await usage.top({ orgId: customer.orgId, by: "key", from, to, limit: 10 });
      const known = new Map<string, ApiKeyInfo>();
      for (const entry of top) {
        const found = await this.services.keys.get(entry.keyId as string).catch(() => null);
        if (found !== null && found.orgId === customer.orgId) known.set(found.id, found);
      }
      result.keys = top.map((entry) => {
        const found = known.get(entry.keyId as string);
        return {
          keyId: entry.keyId as string,
          name: found?.name ?? null,
          start: found?.start ?? null,
          last4: found?.last4 ?? null,
          calls: entry.calls,
          errors: entry.errors,
        };
      });
    }
    return result;
  }

  async audit({ customer, query }: ApiRequest) {
    const page = await this.services.audit.list({
      orgId: customer.orgId,
      cursor: query.get("cursor"),
      limit: 50,
    });
    const admin = customer.role === "admin";
    return {
      items: page.items.map((event) => {
        const you = event.actor.type === "user" && event.actor.id === customer.userId;
        return {
          id: event.id,
          at: event.at,
          action: event.action,
          // Members and viewers see what happened, not who (ids) from where (addresses).
          actor: admin ? { ...event.actor, you } : { type: event.actor.type, you },
          keyId: event.keyId,
          details: admin ? event.details : whatHappened(event.details),
        };
      }),
      nextCursor: page.nextCursor,
    };
  }

  // --- who may see and change what -----------------------------------------------------------

  private ownKey(request: ApiRequest): Promise<ApiKeyInfo> {
    return this.ownKeyById(request.keyId ?? "", request.customer);
  }

  /** The key, if it belongs to the customer's org; otherwise exactly what an unknown id gets. */
  private async ownKeyById(id: string, customer: PortalCustomer): Promise<ApiKeyInfo> {
    if (id.length > 128) throw new FluxError("not_found", { detail: "No such key." });
    const key = await this.services.keys.get(id);
    if (key.orgId !== customer.orgId) throw new FluxError("not_found", { detail: "No such key." });
    return key;
  }

  private offeredScopes(planScopes: readonly string[]) {
    const configured = this.options.scopes;
    if (configured === undefined) return planScopes.map((scope) => ({ scope }));
    if (planScopes.length === 0) return configured;
    return configured.filter((entry) => scopeCovers(planScopes, entry.scope));
  }

  /** Scopes outside the configured list are refused; the plan itself is enforced by core. */
  private assertOffered(scopes: readonly string[]): void {
    const configured = this.options.scopes;
    if (configured === undefined) return;
    const outside = scopes.filter((scope) => !configured.some((entry) => entry.scope === scope));
    if (outside.length > 0) {
      throw new FluxError("scope_not_allowed", {
        detail: `Not offered in this portal: ${outside.join(", ")}.`,
        extensions: { scopes: outside },
      });
    }
  }

  private canManage(key: ApiKeyInfo, customer: PortalCustomer): boolean {
    if (customer.role === "admin") return true;
    return (
      customer.role === "member" && key.createdBy.type === "user" && key.createdBy.id === customer.userId
    );
  }

  private assertCanManage(key: ApiKeyInfo, customer: PortalCustomer): void {
    if (customer.role === "viewer") {
      throw new FluxError("role_denied", { detail: "Viewers cannot change keys." });
    }
    if (!this.canManage(key, customer)) {
      throw new FluxError("role_denied", {
        detail: "Only an admin can change keys created by someone else.",
      });
    }
  }

  private view(key: ApiKeyInfo, customer: PortalCustomer) {
    const now = this.services.now();
    let status: Display = key.status;
    if (
      status === "active" &&
      key.expiresAt !== null &&
      key.expiresAt.getTime() - now <= this.options.expiringSoonMs
    ) {
      status = "expiring";
    }
    const mine = key.createdBy.type === "user" && key.createdBy.id === customer.userId;
    return {
      id: key.id,
      name: key.name,
      start: key.start,
      last4: key.last4,
      environment: key.environment,
      scopes: key.scopes,
      status,
      // Who created it (an operator's or a colleague's id) is for admins, or the creator.
      createdBy: customer.role === "admin" || mine ? key.createdBy : { type: key.createdBy.type },
      createdByYou: mine,
      createdAt: key.createdAt,
      lastUsedAt: key.lastUsedAt,
      expiresAt: key.expiresAt,
      revokedAt: key.revokedAt,
      sunsetAt: key.sunsetAt,
      replacedById: key.replacedById,
      canManage: key.status !== "revoked" && key.status !== "expired" && this.canManage(key, customer),
    };
  }
}
