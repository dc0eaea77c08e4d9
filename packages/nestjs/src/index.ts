export { ApiKeyDeniedException } from "./api-key.exception.js";
export { ApiKeyExceptionFilter } from "./api-key.filter.js";
export { ApiKeyGuard } from "./api-key.guard.js";
export { ApiKeyContextInterceptor } from "./api-key-context.interceptor.js";
export { FLUX, FLUX_KEYS_AUTH, FLUX_KEYS_OPTIONS } from "./flux-keys.constants.js";
export { ApiKey, Entitlement, Public, RateLimitCost, Scopes } from "./flux-keys.decorators.js";
export { FluxKeysMiddleware, type MiddlewareRequirements } from "./flux-keys.middleware.js";
export { FluxKeysModule } from "./flux-keys.module.js";
export type {
  FluxKeysModuleAsyncOptions,
  FluxKeysModuleOptions,
  FluxKeysOptionsFactory,
} from "./flux-keys.options.js";
