import type {
  Flux,
  FluxOptions,
  HttpAuthOptions,
  PortalOptions,
  PrometheusOptions,
  RunWithContext,
} from "@flux-keys/core";
import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency, Type } from "@nestjs/common";

export interface FluxKeysModuleOptions extends HttpAuthOptions {
  /**
   * The instance from `createFlux()`, or the options for the module to create one with
   * (`{ fluxOptions: {} }` reads `DATABASE_URL` / `REDIS_URL`); inject it with `@Inject(FLUX)`.
   */
  flux?: Flux;
  /** Options for the module to create (and own) the Flux instance, when `flux` is not given. */
  fluxOptions?: FluxOptions;
  /** Guard every route of the app (`APP_GUARD`); else use `@UseGuards(ApiKeyGuard)`. @default true */
  global?: boolean;
  /** Units a route costs unless `@RateLimitCost()` says otherwise. @default 1 */
  cost?: number;
  /**
   * Execution context types besides `http` and `graphql` (e.g. `'ws'`, `'rpc'`) that ApiKeyGuard
   * lets through without a key, because something else authenticates them. Any other type is
   * refused (the guard returns false) unless the handler is `@Public()`. @default []
   */
  allowContexts?: readonly string[];
  /**
   * Call `flux.close()` when the Nest app shuts down. Usage is flushed on shutdown either way;
   * call `app.enableShutdownHooks()` so that SIGTERM runs the shutdown hooks.
   * @default true when the module created the instance (`fluxOptions`), else false
   */
  closeOnShutdown?: boolean;
  /**
   * Serve the customer portal under `portal.basePath` (e.g. `{ basePath: "/portal" }`), as
   * middleware ahead of guards: API keys do not open it. @default none
   */
  portal?: PortalOptions;
  /**
   * Serve the `flux_*` metrics for Prometheus at `metrics.path` (`true`: at `/metrics`), as
   * middleware ahead of guards: a scraper has no API key; keep the path internal. @default none
   */
  metrics?: boolean | (PrometheusOptions & { path?: string });
  /**
   * Runs each guarded handler inside a scope made from the verified key, e.g.
   * `transactionContextFromKey()` of `@flux-keys/openfeature` (through an interceptor). @default none
   */
  runWithContext?: RunWithContext;
}

export interface FluxKeysOptionsFactory {
  createFluxKeysOptions(): Promise<FluxKeysModuleOptions> | FluxKeysModuleOptions;
}

export interface FluxKeysModuleAsyncOptions extends Pick<ModuleMetadata, "imports"> {
  /** Guard every route (decided here, since the factory runs too late to register APP_GUARD). @default true */
  global?: boolean;
  useFactory?: (...args: never[]) => Promise<FluxKeysModuleOptions> | FluxKeysModuleOptions;
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  useClass?: Type<FluxKeysOptionsFactory>;
  useExisting?: Type<FluxKeysOptionsFactory>;
}
