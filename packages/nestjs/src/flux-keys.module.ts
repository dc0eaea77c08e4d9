import type { IncomingMessage, ServerResponse } from "node:http";
import { createFlux, createHttpAuth, type Flux, prometheusHandler, serveWeb } from "@flux-keys/core";
import { createPortalHandler, portalServices } from "@flux-keys/portal";
import {
  type DynamicModule,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
  type Provider,
  RequestMethod,
} from "@nestjs/common";
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR, HttpAdapterHost } from "@nestjs/core";
import { ApiKeyExceptionFilter } from "./api-key.filter.js";
import { ApiKeyGuard } from "./api-key.guard.js";
import { ApiKeyContextInterceptor } from "./api-key-context.interceptor.js";
import { FLUX, FLUX_KEYS_AUTH, FLUX_KEYS_GLOBAL_GUARD, FLUX_KEYS_OPTIONS } from "./flux-keys.constants.js";
import { FluxKeysMiddleware } from "./flux-keys.middleware.js";
import type {
  FluxKeysModuleAsyncOptions,
  FluxKeysModuleOptions,
  FluxKeysOptionsFactory,
} from "./flux-keys.options.js";

/** What the module uses of the Fastify instance behind Nest's Fastify platform. */
interface FastifyLike {
  decorateRequest?(name: string, value: null): unknown;
  hasRequestDecorator?(name: string): boolean;
}

/** Flux instances the module created itself (and so closes on shutdown by default). */
const created = new WeakSet<Flux>();

const sharedProviders: Provider[] = [
  {
    provide: FLUX,
    useFactory: async (options: FluxKeysModuleOptions) => {
      if (options.flux !== undefined) return options.flux;
      if (options.fluxOptions === undefined) {
        throw new Error("FluxKeysModule needs `flux` (a createFlux() instance) or `fluxOptions`.");
      }
      const flux = await createFlux(options.fluxOptions);
      created.add(flux);
      return flux;
    },
    inject: [FLUX_KEYS_OPTIONS],
  },
  {
    provide: FLUX_KEYS_AUTH,
    useFactory: (options: FluxKeysModuleOptions, flux: Flux) => {
      const {
        flux: _flux,
        fluxOptions: _fluxOptions,
        global: _global,
        cost: _cost,
        closeOnShutdown: _close,
        portal: _portal,
        metrics: _metrics,
        runWithContext: _run,
        allowContexts: _allowContexts,
        ...http
      } = options;
      return createHttpAuth(flux, http);
    },
    inject: [FLUX_KEYS_OPTIONS, FLUX],
  },
  ApiKeyGuard,
  FluxKeysMiddleware,
  { provide: APP_FILTER, useClass: ApiKeyExceptionFilter },
];

/** The interceptor of `runWithContext`: only when asked (forRoot), or always (forRootAsync, a no-op without it). */
const contextInterceptor: Provider = { provide: APP_INTERCEPTOR, useClass: ApiKeyContextInterceptor };

/** What both forRoot and forRootAsync make available to the app. */
const moduleExports = [
  FLUX,
  FLUX_KEYS_OPTIONS,
  FLUX_KEYS_GLOBAL_GUARD,
  FLUX_KEYS_AUTH,
  ApiKeyGuard,
  FluxKeysMiddleware,
];

/** The app-wide guard unless `global: false`, and the setting itself (what API documents read). */
function appGuard(global: boolean | undefined): Provider[] {
  const setting: Provider = { provide: FLUX_KEYS_GLOBAL_GUARD, useValue: global !== false };
  return global === false ? [setting] : [setting, { provide: APP_GUARD, useExisting: ApiKeyGuard }];
}

/**
 * `FluxKeysModule.forRoot({ flux })` guards every route with ApiKeyGuard (set `global: false` to
 * guard per controller with `@UseGuards(ApiKeyGuard)`); `forRootAsync` builds the options with
 * `useFactory`, `useClass` or `useExisting`.
 */
@Module({})
export class FluxKeysModule implements NestModule, OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(FLUX_KEYS_OPTIONS) private readonly options: FluxKeysModuleOptions,
    @Inject(FLUX) private readonly flux: Flux,
    @Optional() @Inject(HttpAdapterHost) private readonly adapterHost?: HttpAdapterHost,
  ) {}

  /**
   * On the Fastify platform, `request.apiKey` is declared with Fastify's `decorateRequest` before
   * the server starts (as `@flux-keys/fastify` does): the guard's assignment then keeps every
   * request of one shape instead of adding a property to each, which slows Fastify's own code.
   */
  onModuleInit(): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (adapter?.getType() !== "fastify") return;
    const fastify = adapter.getInstance<FastifyLike>();
    if (typeof fastify.decorateRequest !== "function" || fastify.hasRequestDecorator?.("apiKey")) return;
    fastify.decorateRequest("apiKey", null);
  }

  static forRoot(options: FluxKeysModuleOptions): DynamicModule {
    return {
      module: FluxKeysModule,
      global: true,
      providers: [
        { provide: FLUX_KEYS_OPTIONS, useValue: options },
        ...sharedProviders,
        ...appGuard(options.global),
        ...(options.runWithContext ? [contextInterceptor] : []),
      ],
      exports: moduleExports,
    };
  }

  static forRootAsync(options: FluxKeysModuleAsyncOptions): DynamicModule {
    return {
      module: FluxKeysModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        ...FluxKeysModule.asyncProviders(options),
        ...sharedProviders,
        ...appGuard(options.global),
        contextInterceptor,
      ],
      exports: moduleExports,
    };
  }

  private static asyncProviders(options: FluxKeysModuleAsyncOptions): Provider[] {
    if (options.useFactory) {
      return [{ provide: FLUX_KEYS_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }];
    }
    const factory = options.useClass ?? options.useExisting;
    if (!factory) throw new Error("FluxKeysModule.forRootAsync needs useFactory, useClass or useExisting.");
    const providers: Provider[] = [
      {
        provide: FLUX_KEYS_OPTIONS,
        useFactory: (f: FluxKeysOptionsFactory) => f.createFluxKeysOptions(),
        inject: [factory],
      },
    ];
    if (options.useClass) providers.push({ provide: options.useClass, useClass: options.useClass });
    return providers;
  }

  /** Mounts the portal and the metrics (when configured) as middleware, ahead of guards, on either platform. */
  configure(consumer: MiddlewareConsumer): void {
    const portal = this.options.portal;
    if (portal) {
      const handler = createPortalHandler(portalServices(this.flux), portal);
      mountWeb(consumer, handler.basePath, true, handler);
    }
    const metrics = this.options.metrics;
    if (metrics) {
      const { path = "/metrics", ...prometheus } = metrics === true ? {} : metrics;
      mountWeb(consumer, path, false, prometheusHandler(this.flux, prometheus));
    }
  }

  /**
   * Runs after the HTTP server has stopped (every response finished, so every call recorded):
   * usage is flushed, and the instance closed when the module created it or was told to.
   */
  async onApplicationShutdown(): Promise<void> {
    const close = this.options.closeOnShutdown ?? created.has(this.flux);
    if (close) await this.flux.close();
    else await this.flux.usage.flush().catch(() => {});
  }
}

/** A Web handler as middleware at `base` (and below it, when `subtree`), ahead of guards. */
function mountWeb(
  consumer: MiddlewareConsumer,
  base: string,
  subtree: boolean,
  handler: (request: Request) => Promise<Response>,
): void {
  const middleware = (
    req: IncomingMessage & { originalUrl?: string },
    res: ServerResponse,
    next: (error?: unknown) => void,
  ) => {
    const url = req.originalUrl ?? req.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    if (path !== base && !(subtree && path.startsWith(`${base}/`))) return next();
    serveWeb(handler, req, res, url).catch(next);
  };
  // Only these paths reach the middleware; the prefix check above guards the edge cases.
  const prefix = base.replace(/^\//, "");
  const routes = [{ path: prefix, method: RequestMethod.ALL }];
  if (subtree) routes.push({ path: `${prefix}/{*splat}`, method: RequestMethod.ALL });
  consumer.apply(middleware).forRoutes(...routes);
}
