export type { AuditEntry, AuditQuery } from "./audit.js";
export { AuditLog } from "./audit.js";
export {
  type Billing,
  type BillingEventInput,
  type BillingOutcome,
  type BillingResult,
  planFor,
  type SubscriptionPolicy,
  type SubscriptionState,
  suspendedFor,
} from "./billing/billing.js";
export type { MeterOutbox, MeterOutboxOptions, MeterSendRow } from "./billing/meter-outbox.js";
export { type Duration, durationMs, isDuration, toMs } from "./duration.js";
export {
  checkForKey,
  type EntitlementCheckOptions,
  type EntitlementFlagClient,
  effectiveEntitlements,
  type FlagContext,
  type FlagContextValue,
  flagContextFor,
} from "./entitlements.js";
export {
  ERROR_CODES,
  FluxConfigError,
  FluxError,
  type FluxErrorCode,
  isFluxError,
  type ProblemDetails,
} from "./errors.js";
export {
  type AddWebhookInput,
  type EventData,
  LIFECYCLE_EVENT_TYPES,
  type LifecycleEvent,
  type LifecycleEventType,
  type LifecycleHandler,
  type RecordedEvent,
  type RecordedEventQuery,
  SIGNATURE_HEADER,
  signWebhookPayload,
  type VerifyWebhookOptions,
  verifyWebhookSignature,
  type WebhookDeliveryInfo,
  type WebhookDeliveryQuery,
  type WebhookDeliveryStatus,
  type WebhookEndpointInfo,
  type WebhookEndpointOptions,
  type WebhookOptions,
  type WebhookRunReport,
  type Webhooks,
} from "./events/index.js";
export { createFlux, type Flux } from "./flux.js";
export { readBodyLimited } from "./http/body.js";
export {
  addressBucket,
  type ClientAddressSource,
  clientAddress,
  compileTrust,
  type TrustProxy,
} from "./http/client-address.js";
export { extractCredential, type HeaderBag } from "./http/credentials.js";
export {
  createHttpAuth,
  HttpAuth,
  type HttpAuthDenial,
  type HttpAuthOptions,
  type HttpAuthResult,
  type HttpRequestLike,
  type RouteRequirements,
} from "./http/http-auth.js";
export {
  isKeyLike,
  REDACTED,
  type RedactOptions,
  redactHeaders,
  redactQuery,
  redactUrl,
} from "./http/log-redaction.js";
export { type DenialResponse, denialResponse, PROBLEM_CONTENT_TYPE } from "./http/problem.js";
export { KeyBuilder } from "./keys/builder.js";
export { createKeyParser, type KeyEnvironment, type ParsedKey } from "./keys/format.js";
export {
  type CheckResult,
  type DeniedKey,
  type GraceUsage,
  type IssuedKey,
  type KeyChanges,
  type KeyListQuery,
  Keys,
  type RevokedKey,
  type RotatedKey,
  type ScopeSuggestion,
  type VerifyOptions,
} from "./keys/keys.js";
export {
  createSecretScanningHandler,
  type GitHubPublicKey,
  type SecretScanningOptions,
} from "./leaks/github-alerts.js";
export { findFluxKeys, fluxKeyPattern, isFluxKey } from "./leaks/secret-scanning.js";
export type { EntitlementEntry } from "./limits/entitlement-queries.js";
export { type RateLimitHeaderSource, rateLimitHeaders } from "./limits/headers.js";
export type { LimitOptions } from "./limits/limit-options.js";
export { loadMigrations, type MigrationReport, migrate } from "./migrator.js";
export {
  addFluxKeysToDocument,
  type FluxKeysExtension,
  type OpenApiOptions,
  type OperationRequirements,
  openApiComponents,
  operationSecurity,
  problemDetailsSchema,
  withOperationSecurity,
} from "./openapi/openapi.js";
export type { ClusterNode, FluxOptions, LogFields, Logger } from "./options.js";
export { type OrgChanges, Orgs } from "./orgs.js";
export { Plans } from "./plans.js";
export {
  asPortalHandler,
  type CreatePortalSessionInput,
  type CreateSessionInput,
  createPortalHandler,
  linkUrl,
  normalizeBasePath,
  PORTAL_ROLES,
  Portal,
  type PortalCustomer,
  type PortalHandler,
  type PortalKeyRequest,
  type PortalOptions,
  type PortalRequestContext,
  type PortalRole,
  type PortalScopeOption,
  type PortalServices,
  type PortalSessionLink,
  type PortalSessionRecord,
  portalServices,
  type ResolvedPortalOptions,
  resolvePortalOptions,
  sendWebResponse,
  servePortal,
  serveWeb,
  toNodeListener,
  toWebRequest,
} from "./portal/index.js";
export { hasScopes, missingScopes, requirementError, scopeCovers } from "./scopes.js";
export { INSTRUMENTS, type InstrumentSpec, prometheusName } from "./telemetry/instruments.js";
export { type Outcome, outcomeOf } from "./telemetry/outcome.js";
export {
  createPrometheusRegistry,
  type PrometheusHandler,
  type PrometheusOptions,
  prometheusHandler,
} from "./telemetry/prometheus.js";
export type { TelemetryOptions } from "./telemetry/telemetry-options.js";
export type * from "./types.js";
export {
  type Granularity,
  type GroupDimension,
  type StatusClass,
  type UnidentifiedCounts,
  USAGE_OUTCOMES,
  Usage,
  type UsageFlushReport,
  type UsageGroup,
  type UsageOutcome,
  type UsagePoint,
  type UsageQuery,
  type UsageQueryResult,
  type UsageRecord,
  type UsageSeries,
  type UsageStats,
  type UsageTopEntry,
  type UsageTopQuery,
  type UsageTotals,
} from "./usage/usage.js";
export type { UsageOptions } from "./usage/usage-options.js";
export { outcomeOf as usageOutcomeOf } from "./usage/usage-outcomes.js";
/** For `@flux-keys/portal`: the same input checks (and `invalid_request` problems) as core's own. */
export { displayName, parseInput } from "./validation.js";
