import type { IncomingMessage, ServerResponse } from "node:http";
import { createHttpAuth, type Flux, serveWeb } from "@flux-keys/core";
import {
  type DynamicModule,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  type OnApplicationShutdown,
  type Provider,
  RequestMethod,
} from "@nestjs/common";
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from "@nestjs/core";
import { ApiKeyExceptionFilter } from "./api-key.filter.js";
import { ApiKeyGuard } from "./api-key.guard.js";
import { ApiKeyContextInterceptor } from "./api-key-context.interceptor.js";
import { FLUX, FLUX_KEYS_AUTH, FLUX_KEYS_OPTIONS } from "./flux-keys.constants.js";
import type {
  FluxKeysModuleAsyncOptions,
  FluxKeysModuleOptions,
  FluxKeysOptionsFactory,
} from "./flux-keys.options.js";

const sharedProviders: Provider[] = [
  {
    provide: FLUX,
    useFactory: (options: FluxKeysModuleOptions) => options.flux,
    inject: [FLUX_KEYS_OPTIONS],
  },
  {
    provide: FLUX_KEYS_AUTH,
    useFactory: (options: FluxKeysModuleOptions) => {
      const {
        flux,
        global: _global,
        cost: _cost,
        closeOnShutdown: _close,
        portal: _portal,
        runWithContext: _run,
        ...http
      } = options;
      return createHttpAuth(flux, http);
    },
    inject: [FLUX_KEYS_OPTIONS],
  },
  ApiKeyGuard,
  { provide: APP_FILTER, useClass: ApiKeyExceptionFilter },
];

/** The interceptor of `runWithContext`: only when asked (forRoot), or always (forRootAsync, a no-op without it). */
const contextInterceptor: Provider = { provide: APP_INTERCEPTOR, useClass: ApiKeyContextInterceptor };

function appGuard(global: boolean | undefined): Provider[] {
  return global === false ? [] : [{ provide: APP_GUARD, useExisting: ApiKeyGuard }];
}

/**
 * `FluxKeysModule.forRoot({ flux })` guards every route with ApiKeyGuard (set `global: false` to
 * guard per controller with `@UseGuards(ApiKeyGuard)`); `forRootAsync` builds the options with
 * `useFactory`, `useClass` or `useExisting`.
 */
@Module({})
export class FluxKeysModule implements NestModule, OnApplicationShutdown {
  constructor(@Inject(FLUX_KEYS_OPTIONS) private readonly options: FluxKeysModuleOptions) {}

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
      exports: [FLUX, FLUX_KEYS_OPTIONS, FLUX_KEYS_AUTH, ApiKeyGuard],
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
      exports: [FLUX, FLUX_KEYS_OPTIONS, FLUX_KEYS_AUTH, ApiKeyGuard],
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

  /** Mounts the portal (when configured) as middleware, ahead of guards, on either platform. */
  configure(consumer: MiddlewareConsumer): void {
    const portal = this.options.portal;
    if (!portal) return;
    const handler = this.options.flux.portal.handler(portal);
    const base = handler.basePath;
    const middleware = (
      req: IncomingMessage & { originalUrl?: string },
      res: ServerResponse,
      next: (error?: unknown) => void,
    ) => {
      const url = req.originalUrl ?? req.url ?? "/";
      const path = url.split("?")[0] ?? "/";
      if (path !== base && !path.startsWith(`${base}/`)) return next();
      serveWeb(handler, req, res, url).catch(next);
    };
    // Only the portal's paths reach the middleware; the prefix check above guards the edge cases.
    const prefix = base.replace(/^\//, "");
    consumer
      .apply(middleware)
      .forRoutes(
        { path: prefix, method: RequestMethod.ALL },
        { path: `${prefix}/{*splat}`, method: RequestMethod.ALL },
      );
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.options.closeOnShutdown) await (this.options.flux as Flux).close();
  }
}
