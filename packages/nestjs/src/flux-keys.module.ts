import { createHttpAuth, type Flux } from "@flux-keys/core";
import {
  type DynamicModule,
  Inject,
  Module,
  type OnApplicationShutdown,
  type Provider,
} from "@nestjs/common";
import { APP_FILTER, APP_GUARD } from "@nestjs/core";
import { ApiKeyExceptionFilter } from "./api-key.filter.js";
import { ApiKeyGuard } from "./api-key.guard.js";
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
      const { flux, global: _global, cost: _cost, closeOnShutdown: _close, ...http } = options;
      return createHttpAuth(flux, http);
    },
    inject: [FLUX_KEYS_OPTIONS],
  },
  ApiKeyGuard,
  { provide: APP_FILTER, useClass: ApiKeyExceptionFilter },
];

function appGuard(global: boolean | undefined): Provider[] {
  return global === false ? [] : [{ provide: APP_GUARD, useExisting: ApiKeyGuard }];
}

/**
 * `FluxKeysModule.forRoot({ flux })` guards every route with ApiKeyGuard (set `global: false` to
 * guard per controller with `@UseGuards(ApiKeyGuard)`); `forRootAsync` builds the options with
 * `useFactory`, `useClass` or `useExisting`.
 */
@Module({})
export class FluxKeysModule implements OnApplicationShutdown {
  constructor(@Inject(FLUX_KEYS_OPTIONS) private readonly options: FluxKeysModuleOptions) {}

  static forRoot(options: FluxKeysModuleOptions): DynamicModule {
    return {
      module: FluxKeysModule,
      global: true,
      providers: [
        { provide: FLUX_KEYS_OPTIONS, useValue: options },
        ...sharedProviders,
        ...appGuard(options.global),
      ],
      exports: [FLUX, FLUX_KEYS_OPTIONS, FLUX_KEYS_AUTH, ApiKeyGuard],
    };
  }

  static forRootAsync(options: FluxKeysModuleAsyncOptions): DynamicModule {
    return {
      module: FluxKeysModule,
      global: true,
      imports: options.imports ?? [],
      providers: [...FluxKeysModule.asyncProviders(options), ...sharedProviders, ...appGuard(options.global)],
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

  async onApplicationShutdown(): Promise<void> {
    if (this.options.closeOnShutdown) await (this.options.flux as Flux).close();
  }
}
