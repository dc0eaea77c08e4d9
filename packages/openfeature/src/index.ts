/**
 * OpenFeature for Flux Keys.
 *
 *   await OpenFeature.setProviderAndWait(new MultiProvider([{ provider: yourFlags }, { provider: new FluxEntitlementProvider(flux) }]));
 *   const flags = OpenFeature.getClient();
 *   await flux.entitlements.check(req.apiKey, "bulk_export", { flags });   // plan + overrides + flags
 *   app.use(fluxKeys(flux, { runWithContext: transactionContextFromKey() })); // flags deep in handlers target the key
 */
import { flagContextFor, type KeyContext, type RunWithContext } from "@flux-keys/core";
import {
  AsyncLocalStorageTransactionContextPropagator,
  type EvaluationContext,
  OpenFeature,
  type TransactionContextPropagator,
} from "@openfeature/server-sdk";

export { FluxEntitlementProvider, type FluxEntitlementProviderOptions } from "./entitlement-provider.js";

/**
 * The evaluation context of a verified key: `targetingKey` is the org id; `orgId`, `keyId`,
 * `keyName`, `plan`, `environment`, `scopes` and `entitlements` are attributes. Never the secret.
 */
export function evaluationContextFor(
  context: Pick<KeyContext, "orgId" | "keyId" | "name" | "plan" | "environment" | "scopes" | "entitlements">,
): EvaluationContext {
  return flagContextFor(context) as EvaluationContext;
}

/**
 * For the adapters' `runWithContext` option: sets OpenFeature's transaction context of each
 * request to the verified key's evaluation context, so a flag evaluated anywhere in the handler
 * (`OpenFeature.getClient().getBooleanValue(…)` with no context) targets the right org and plan.
 * Installs the AsyncLocalStorage propagator (or the one given) on the OpenFeature API.
 */
export function transactionContextFromKey(
  options: {
    api?: Pick<typeof OpenFeature, "setTransactionContextPropagator" | "setTransactionContext">;
    propagator?: TransactionContextPropagator;
  } = {},
): RunWithContext {
  const api = options.api ?? OpenFeature;
  api.setTransactionContextPropagator(
    options.propagator ?? new AsyncLocalStorageTransactionContextPropagator(),
  );
  return (context, run) => api.setTransactionContext(evaluationContextFor(context), run);
}
