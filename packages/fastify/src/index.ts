/**
 * Flux Keys for Fastify 5.
 *
 *   await app.register(fluxKeys, { flux });
 *   app.get("/v1/events", { config: { apiKey: { scopes: ["read:events"] } } }, (request) => request.apiKey);
 *
 * Every route is protected unless its config says `apiKey: { public: true }`. Core decides; this
 * plugin reads the route's config, calls core before the handler, decorates `request.apiKey`, sends
 * the RateLimit fields, and records usage after the response. Denials are thrown as `FluxKeysError`
 * (with `statusCode` and `headers`) so your error handler can shape them; left to Fastify's default
 * handler they are sent as RFC 9457 problem details.
 */
import { AsyncResource } from "node:async_hooks";
import {
  createHttpAuth,
  type DenialResponse,
  type Flux,
  FluxError,
  type HttpAuthOptions,
  type HttpAuthResult,
  type HttpRequestLike,
  type KeyContext,
  type OpenApiOptions,
  type PortalOptions,
  type PrometheusOptions,
  problemDetailsSchema,
  prometheusHandler,
  type RouteRequirements,
  type RunWithContext,
  sendWebResponse,
  toWebRequest,
  withOperationSecurity,
} from "@flux-keys/core";
import { createPortalHandler, portalServices } from "@flux-keys/portal";
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";

declare module "fastify" {
  interface FastifyRequest {
    /** The verified key's context; null on public routes. */
    apiKey: KeyContext | null;
  }
  interface FastifyContextConfig {
    /** Flux Keys requirements of this route. */
    apiKey?: RouteRequirements;
  }
}

/** A denial: `statusCode`, `headers` and `toProblem()` for your error handler. */
export class FluxKeysError extends FluxError {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  constructor(error: FluxError, response: DenialResponse) {
    super(error.code, { detail: error.detail, extensions: error.extensions });
    this.statusCode = response.status;
    this.headers = response.headers;
  }
}

export interface FluxKeysPluginOptions extends HttpAuthOptions {
  flux: Flux;
  /** Units a route costs unless its config says otherwise. @default 1 */
  cost?: number;
  /**
   * Runs the rest of the request (hooks and handler) inside a scope made from the verified key,
   * e.g. `transactionContextFromKey()` of `@flux-keys/openfeature`. @default none
   */
  runWithContext?: RunWithContext;
  /**
   * Describe protected routes for `@fastify/swagger`: each route's schema gains `security`
   * (scopes and entitlement), `x-flux-keys` and the 401 / 403 / 429 / 503 problem responses, and
   * the problem schema is added as the shared schema `FluxProblem`. Give `@fastify/swagger` the
   * security schemes: `components: { securitySchemes: openApiComponents().securitySchemes }`.
   * @default false
   */
  openapi?: boolean | OpenApiOptions;
}

interface Pending {
  /** Set once the key is verified. */
  context: KeyContext | null;
  /** The route template (read once: `request.routeOptions` builds a new object per read). */
  endpoint: string | undefined;
  startedAt: number;
  scopes: readonly string[] | undefined;
  request: HttpRequestLike;
  /** What the request cost. */
  units: number;
}

const PROBLEM_SCHEMA_ID = "FluxProblem";
const DEFAULT_ERROR_KEYS = new Set(["statusCode", "code", "error", "message"]);
/** Per-request state, as request decorations (stable shapes; no WeakMap per request). */
const kPending = Symbol("flux-keys.pending");
const kDenial = Symbol("flux-keys.denial");
/** A route's requirements with the cost resolved, computed once in `onRoute`. */
const kRoute = Symbol("flux-keys.route");
/** The async scope `runWithContext` opened, re-entered before the handler (body parsing leaves it). */
const kScope = Symbol("flux-keys.scope");

type StatefulRequest = FastifyRequest & {
  [kPending]: Pending | null;
  [kDenial]: { error: FluxError; response: DenialResponse } | null;
  [kScope]: AsyncResource | null;
};
type RouteConfig = { apiKey?: RouteRequirements; [kRoute]?: RouteRequirements };

const plugin: FastifyPluginAsync<FluxKeysPluginOptions> = async (fastify, options) => {
  const { flux, cost, runWithContext, openapi, ...authOptions } = options;
  if (!flux) throw new Error("@flux-keys/fastify: pass { flux } when registering the plugin.");
  const auth = createHttpAuth(flux, authOptions);

  const defaultRoute: RouteRequirements = Object.freeze({ cost: cost ?? 1 });
  fastify.decorateRequest("apiKey", null);
  fastify.decorateRequest(kPending, null);
  fastify.decorateRequest(kDenial, null);
  if (runWithContext) {
    fastify.decorateRequest(kScope, null);
    fastify.addHook("preHandler", (request, _reply, done) => {
      const scope = (request as StatefulRequest)[kScope];
      if (scope) scope.runInAsyncScope(done);
      else done();
    });
  }

  const resolve = (own: RouteRequirements | undefined): RouteRequirements =>
    own === undefined ? defaultRoute : Object.freeze({ ...own, cost: own.cost ?? cost ?? 1 });
  const documented: OpenApiOptions | null =
    openapi === undefined || openapi === false
      ? null
      : {
          apiKeyHeader: auth.options.apiKeyHeader,
          problemRef: `${PROBLEM_SCHEMA_ID}#`,
          ...(openapi === true ? {} : openapi),
        };
  if (documented !== null) fastify.addSchema({ $id: PROBLEM_SCHEMA_ID, ...problemDetailsSchema() });
  fastify.addHook("onRoute", (routeOptions) => {
    const config = (routeOptions.config ?? {}) as RouteConfig;
    const route = resolve(config.apiKey);
    config[kRoute] = route;
    routeOptions.config = config as typeof routeOptions.config;
    if (documented !== null && route.public !== true) {
      // Fastify names it `response`, OpenAPI `responses`; the route's own answers are kept.
      const { response, ...schema } = (routeOptions.schema ?? {}) as Record<string, unknown>;
      const { responses, ...described } = withOperationSecurity(
        // @fastify/swagger describes a 200 only while a route declares no response: keep it.
        { ...schema, responses: response ?? { 200: { description: "Default Response" } } },
        route,
        documented,
      );
      routeOptions.schema = { ...described, response: responses } as typeof routeOptions.schema;
    }
  });

  /** Continues the request with the verification's result (in the hook's turn when it is known). */
  const proceed = (
    result: HttpAuthResult,
    request: FastifyRequest,
    reply: FastifyReply,
    done: (error?: Error) => void,
    pending: Pending,
  ): void => {
    if (!result.ok) {
      auth.recordDenial(result, {
        method: request.method,
        endpoint: pending.endpoint,
        startedAt: pending.startedAt,
      });
      (request as StatefulRequest)[kDenial] = result;
      done(new FluxKeysError(result.error, result.response));
      return;
    }
    request.apiKey = result.context;
    pending.context = result.context;
    (request as StatefulRequest)[kPending] = pending;
    reply.headers(result.headers);
    if (!runWithContext) {
      done();
      return;
    }
    runWithContext(result.context, () => {
      (request as StatefulRequest)[kScope] = new AsyncResource("flux-keys.request");
      done();
    });
  };

  // Callback-style hooks: Fastify calls them without a promise per hook per request, and a key
  // verified in this turn (cached, in-process limits) goes on to the handler in it.
  fastify.addHook("onRequest", (request, reply, done) => {
    const routeOptions = request.routeOptions;
    const config = routeOptions.config as RouteConfig | undefined;
    // Resolved in onRoute; routes registered before the plugin are resolved here.
    const route = config?.[kRoute] ?? resolve(config?.apiKey);
    if (route.public === true) return done();
    const startedAt = performance.now();
    const httpRequest: HttpRequestLike = {
      method: request.method,
      url: request.raw.url ?? "/",
      headers: request.headers,
      rawHeaders: request.raw.rawHeaders,
      remoteAddress: request.socket.remoteAddress,
    };
    const pending: Pending = {
      context: null,
      endpoint: routeOptions.url,
      startedAt,
      scopes: route.scopes,
      request: httpRequest,
      units: route.cost ?? 1,
    };
    const result = auth.authenticateNow(httpRequest, route);
    if (!(result instanceof Promise)) return proceed(result, request, reply, done, pending);
    result
      .then((settled) => proceed(settled, request, reply, done, pending))
      // Anything thrown on the way reaches Fastify's error handling, as from an async hook.
      .catch(done);
  });

  // Left to Fastify's default error handler, a denial becomes problem details; an app's own
  // handler that shapes the error differently is left alone.
  fastify.addHook("onSend", (request, reply, payload, done) => {
    const denial = (request as StatefulRequest)[kDenial];
    if (denial === null || reply.statusCode !== denial.response.status || typeof payload !== "string") {
      return done(null, payload);
    }
    try {
      const body = JSON.parse(payload) as Record<string, unknown>;
      const isDefault =
        Object.keys(body).every((key) => DEFAULT_ERROR_KEYS.has(key)) && body.code === denial.error.code;
      if (!isDefault) return done(null, payload);
    } catch {
      return done(null, payload);
    }
    reply.header("content-type", "application/problem+json");
    done(null, JSON.stringify(denial.response.body));
  });

  fastify.addHook("onResponse", (request, reply, done) => {
    const entry = (request as StatefulRequest)[kPending];
    if (entry !== null && entry.context !== null) {
      auth.record(entry.context, {
        method: request.method,
        endpoint: entry.endpoint,
        status: reply.statusCode,
        startedAt: entry.startedAt,
        scopes: entry.scopes,
        request: entry.request,
        units: entry.units,
      });
    }
    done();
  });
};

/** The Flux Keys plugin: `app.register(fluxKeys, { flux, ...options })`. */
export const fluxKeys = fp(plugin, { fastify: "5.x", name: "@flux-keys/fastify" });
export default fluxKeys;
export type { KeyContext, RouteRequirements };
export { createRequestSerializer, requestSerializer } from "./log-redaction.js";

export interface FluxPortalPluginOptions extends PortalOptions {
  flux: Flux;
}

/**
 * The customer portal as a plugin: `app.register(fluxPortal, { flux, prefix: "/portal" })`.
 * Its routes are public to `fluxKeys` (API keys do not open the portal) and read the raw body.
 */
const portalPlugin: FastifyPluginAsync<FluxPortalPluginOptions> = async (fastify, options) => {
  // Fastify hands its own register options (prefix, logLevel…) to the plugin too.
  const {
    flux,
    prefix: _prefix,
    logLevel: _logLevel,
    logSerializers: _logSerializers,
    ...portalOptions
  } = options as FluxPortalPluginOptions & { prefix?: string; logLevel?: string; logSerializers?: unknown };
  if (!flux) throw new Error("@flux-keys/fastify: pass { flux } when registering fluxPortal.");
  const basePath = portalOptions.basePath ?? (fastify.prefix || "/portal");
  const handler = createPortalHandler(portalServices(flux), { ...portalOptions, basePath });
  mountWebHandler(fastify, ["/", "/*"], handler);
};

/** The portal plugin (encapsulated: register it with a `prefix`). */
export const fluxPortal = portalPlugin;

export interface FluxMetricsPluginOptions extends PrometheusOptions {
  flux: Flux;
  /** @default '/metrics' */
  path?: string;
}

/**
 * The `flux_*` metrics for Prometheus: `app.register(fluxMetrics, { flux })` serves them at
 * `/metrics` (public to `fluxKeys`: a scraper has no API key; keep the path internal).
 */
export const fluxMetrics: FastifyPluginAsync<FluxMetricsPluginOptions> = async (fastify, options) => {
  const { flux, path = "/metrics", registry } = options;
  if (!flux) throw new Error("@flux-keys/fastify: pass { flux } when registering fluxMetrics.");
  const handler = prometheusHandler(flux, registry === undefined ? {} : { registry });
  fastify.route({
    method: ["GET", "HEAD"],
    url: path,
    config: { apiKey: { public: true } },
    handler: async (request, reply) => {
      const response = await handler(toWebRequest(request.raw, request.raw.url));
      reply.code(response.status).headers(Object.fromEntries(response.headers));
      return request.method === "HEAD" ? reply.send() : reply.send(await response.text());
    },
  });
};

/**
 * Any Flux Keys Web handler (`Request` in, `Response` out) on a path, e.g. GitHub's secret-scanning
 * alerts: `fluxWebRoute(app, "/github/secret-scanning", handler)`. Call it inside an encapsulated
 * plugin (`app.register(async (scope) => fluxWebRoute(scope, …))`): it takes over body parsing there.
 */
export function fluxWebRoute(
  fastify: FastifyInstance,
  path: string,
  handler: (request: Request) => Promise<Response>,
): void {
  mountWebHandler(fastify, [path], handler);
}

function mountWebHandler(
  fastify: FastifyInstance,
  paths: string[],
  handler: (request: Request, context?: { remoteAddress?: string | null }) => Promise<Response>,
): void {
  // The handler reads the raw body itself (signatures, its own JSON limits).
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser("*", (_request, _payload, done) => done(null));
  for (const path of paths) {
    fastify.route({
      method: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      url: path,
      config: { apiKey: { public: true } },
      handler: async (request, reply) => {
        // A handler that throws still reaches Fastify's error handling: hijack only once answered.
        const response = await handler(toWebRequest(request.raw, request.raw.url), {
          remoteAddress: request.socket.remoteAddress ?? null,
        });
        reply.hijack();
        await sendWebResponse(response, reply.raw);
      },
    });
  }
}
