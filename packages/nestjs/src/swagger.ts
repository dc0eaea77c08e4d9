/**
 * `@flux-keys/nestjs/swagger`: routes guarded by Flux Keys in the documents `@nestjs/swagger`
 * builds. `@Scopes`, `@Entitlement`, `@RateLimitCost` and `@Public` become `@ApiSecurity` (either
 * scheme, scopes and `entitlement:<name>` as roles), `@ApiExtension('x-flux-keys', …)` and
 * `@ApiResponse` 401 / 403 / 429 / 503 with the problem schema, applied once per controller.
 *
 *   const document = createFluxKeysDocument(app, new DocumentBuilder().setTitle("API").build());
 *   SwaggerModule.setup("docs", app, document);
 */
import {
  type OpenApiOptions,
  type OperationRequirements,
  openApiComponents,
  operationSecurity,
} from "@flux-keys/core";
import { type INestApplicationContext, RequestMethod, type Type } from "@nestjs/common";
import {
  GUARDS_METADATA,
  HTTP_CODE_METADATA,
  METHOD_METADATA,
  PATH_METADATA,
} from "@nestjs/common/constants.js";
import { ModulesContainer, Reflector } from "@nestjs/core";
import {
  ApiExtension,
  ApiResponse,
  ApiSecurity,
  type DocumentBuilder,
  type OpenAPIObject,
  type SwaggerDocumentOptions,
  SwaggerModule,
} from "@nestjs/swagger";
import { ApiKeyGuard } from "./api-key.guard.js";
import {
  COST_KEY,
  ENTITLEMENT_KEY,
  FLUX_KEYS_GLOBAL_GUARD,
  FLUX_KEYS_OPTIONS,
  PUBLIC_KEY,
  SCOPES_KEY,
} from "./flux-keys.constants.js";
import type { FluxKeysModuleOptions } from "./flux-keys.options.js";

/** Where `@ApiResponse` keeps a handler's responses (`DECORATORS.API_RESPONSE` of @nestjs/swagger). */
const SWAGGER_RESPONSES = "swagger/apiResponse";
type SecurityScheme = Parameters<DocumentBuilder["addSecurity"]>[1];
type ResponseContent = NonNullable<Parameters<typeof ApiResponse>[0]["content"]>;

/** Adds the Flux Keys security schemes (bearer and, unless `apiKeyHeader: false`, the header). */
export function addFluxKeysSecurity(builder: DocumentBuilder, options?: OpenApiOptions): DocumentBuilder {
  for (const [name, scheme] of Object.entries(openApiComponents(options).securitySchemes)) {
    builder.addSecurity(name, scheme as unknown as SecurityScheme);
  }
  return builder;
}

/** Controllers already described (decorators are applied once). */
const described = new WeakSet<object>();

/**
 * Applies the swagger decorators to every controller route of the app that Flux Keys guards
 * (the module's global guard, or `@UseGuards(ApiKeyGuard)` with `global: false`). Call it
 * before `SwaggerModule.createDocument`, or use `createFluxKeysDocument`.
 */
export function describeFluxKeysRoutes(app: INestApplicationContext, options?: OpenApiOptions): void {
  const reflector = new Reflector();
  const moduleOptions = app.get<FluxKeysModuleOptions>(FLUX_KEYS_OPTIONS, { strict: false });
  // forRootAsync takes `global` beside its factory, not in the options the factory makes.
  const global = app.get<boolean>(FLUX_KEYS_GLOBAL_GUARD, { strict: false });
  const resolved: OpenApiOptions = {
    ...(moduleOptions.apiKeyHeader === undefined ? {} : { apiKeyHeader: moduleOptions.apiKeyHeader }),
    ...options,
  };
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller || described.has(controller)) continue;
      described.add(controller);
      for (const name of Object.getOwnPropertyNames(controller.prototype)) {
        const descriptor = Object.getOwnPropertyDescriptor(controller.prototype, name);
        const handler = descriptor?.value as unknown;
        if (typeof handler !== "function" || name === "constructor") continue;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        if (Reflect.getMetadata(METHOD_METADATA, handler) === undefined) continue;
        const guarded = global || hasApiKeyGuard(handler, controller);
        const requirements = requirementsOf(reflector, handler, controller, moduleOptions.cost);
        if (!guarded || requirements.public === true) continue;
        decorate(controller.prototype, name, descriptor as PropertyDescriptor, requirements, resolved);
      }
    }
  }
}

/**
 * `SwaggerModule.createDocument` with the Flux Keys routes described and the security schemes
 * and problem schema in `components`.
 */
export function createFluxKeysDocument(
  app: INestApplicationContext,
  config: Omit<OpenAPIObject, "paths">,
  options: { swagger?: SwaggerDocumentOptions; openapi?: OpenApiOptions } = {},
): OpenAPIObject {
  describeFluxKeysRoutes(app, options.openapi);
  const document = SwaggerModule.createDocument(app as never, config, options.swagger);
  const { securitySchemes, schemas } = openApiComponents(options.openapi);
  document.components = {
    ...document.components,
    securitySchemes: { ...document.components?.securitySchemes, ...securitySchemes } as never,
    schemas: { ...document.components?.schemas, ...schemas } as never,
  };
  return document;
}

function hasApiKeyGuard(handler: object, controller: Type): boolean {
  const guards = [
    ...((Reflect.getMetadata(GUARDS_METADATA, handler) as unknown[] | undefined) ?? []),
    ...((Reflect.getMetadata(GUARDS_METADATA, controller) as unknown[] | undefined) ?? []),
  ];
  return guards.some(
    (guard) =>
      guard === ApiKeyGuard || (typeof guard === "function" && guard.prototype instanceof ApiKeyGuard),
  );
}

/** As `ApiKeyGuard.getRequirements` reads them: the handler's metadata over the controller's. */
function requirementsOf(
  reflector: Reflector,
  handler: object,
  controller: Type,
  defaultCost: number | undefined,
): OperationRequirements {
  const targets = [handler as () => void, controller];
  const scopes = reflector.getAllAndOverride<string[] | undefined>(SCOPES_KEY, targets);
  const entitlement = reflector.getAllAndOverride<string[] | undefined>(ENTITLEMENT_KEY, targets);
  const cost = reflector.getAllAndOverride<number | undefined>(COST_KEY, targets);
  return {
    public: reflector.getAllAndOverride<boolean | undefined>(PUBLIC_KEY, targets) === true,
    scopes: scopes ?? [],
    entitlement: entitlement ?? [],
    cost: cost ?? defaultCost ?? 1,
  };
}

function decorate(
  prototype: object,
  name: string,
  descriptor: PropertyDescriptor,
  requirements: OperationRequirements,
  options: OpenApiOptions,
): void {
  const added = operationSecurity(requirements, options);
  if (added === null) return;
  // @nestjs/swagger describes the success answer only while a handler declares none: keep it.
  const handler = descriptor.value as object;
  const declared =
    (Reflect.getMetadata(SWAGGER_RESPONSES, handler) as Record<string, unknown> | undefined) ?? {};
  if (!Object.keys(declared).some((status) => status.startsWith("2"))) {
    const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod;
    const status =
      (Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined) ??
      (method === RequestMethod.POST ? 201 : 200);
    ApiResponse({ status, description: "" })(prototype, name, descriptor);
  }
  for (const requirement of added.security) {
    const [scheme, roles] = Object.entries(requirement)[0] as [string, string[]];
    ApiSecurity(scheme, roles)(prototype, name, descriptor);
  }
  ApiExtension("x-flux-keys", added["x-flux-keys"])(prototype, name, descriptor);
  for (const [status, response] of Object.entries(added.responses)) {
    const { description, content, headers } = response as {
      description: string;
      content: ResponseContent;
      headers?: Record<string, unknown>;
    };
    ApiResponse({
      status: Number(status),
      description,
      content,
      ...(headers ? { headers: headers as never } : {}),
    })(prototype, name, descriptor);
  }
}
