/** Injection token of the Flux instance (`createFlux()`), provided by FluxKeysModule. */
export const FLUX = Symbol.for("@flux-keys/nestjs:flux");
/** Injection token of the resolved module options. */
export const FLUX_KEYS_OPTIONS = Symbol.for("@flux-keys/nestjs:options");
/** Injection token of whether ApiKeyGuard guards every route (`global`, as forRoot or forRootAsync was given it). */
export const FLUX_KEYS_GLOBAL_GUARD = Symbol.for("@flux-keys/nestjs:global-guard");
/** Injection token of core's HTTP authenticator for this module. */
export const FLUX_KEYS_AUTH = Symbol.for("@flux-keys/nestjs:auth");

export const PUBLIC_KEY = "flux-keys:public";
export const SCOPES_KEY = "flux-keys:scopes";
export const ENTITLEMENT_KEY = "flux-keys:entitlement";
export const COST_KEY = "flux-keys:cost";
