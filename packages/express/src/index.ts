/**
 * Flux Keys for Express 5.
 *
 *   app.use(fluxKeys(flux));
 *   app.get("/v1/events", requireScopes("read:events"), (req: ApiKeyRequest, res) => …);
 *
 * The middleware verifies the key (core decides everything), puts the context on `req.apiKey`,
 * sends the RateLimit fields, and records the call in usage after the response. Denials are RFC 9457
 * problem documents built by core: sent directly by default, or handed to `onDenied`, or passed to
 * Express's error handlers with `next(err)` when `passToErrorHandler` is set.
 */
import {
  addFluxKeysToDocument,
  createHttpAuth,
  type DenialResponse,
  type Flux,
  FluxError,
  type HttpAuth,
  type HttpAuthOptions,
  type HttpAuthResult,
  type HttpRequestLike,
  type KeyContext,
  type OpenApiOptions,
  type PortalHandler,
  type PortalOptions,
  type PrometheusOptions,
  prometheusHandler,
  type RunWithContext,
  requirementError,
  serveWeb,
  type UsageOutcome,
  usageOutcomeOf,
} from "@flux-keys/core";
import { createPortalHandler, portalServices } from "@flux-keys/portal";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { kRequirement, protectionOf, type Requirement, routeRequirements } from "./route-requirements.js";

/** An Express request that passed `fluxKeys()`: `req.apiKey` is the verified key's context. */
export type ApiKeyRequest<P = Record<string, string>> = Request<P> & { apiKey: KeyContext };

/** The error handed to `next(err)` / `onDenied`: status, headers and problem document from core. */
export class FluxKeysHttpError extends FluxError {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly expose = true;
  constructor(error: FluxError, headers: Record<string, string>) {
    super(error.code, { detail: error.detail, extensions: error.extensions });
    this.statusCode = error.status;
    this.headers = headers;
  }
}

export interface FluxKeysOptions extends HttpAuthOptions {
  /** Units each request costs (a number, or computed from the request). @default 1 */
  cost?: number | ((req: Request) => number);
  /** Take over denial responses (call `next(error)` to reach your error handlers). @default none */
  onDenied?: (error: FluxKeysHttpError, req: Request, res: Response, next: NextFunction) => void;
  /** Hand denials to Express's error handlers with `next(err)` instead of answering. @default false */
  passToErrorHandler?: boolean;
  /**
   * Runs the rest of the request inside a scope made from the verified key, e.g.
   * `transactionContextFromKey()` of `@flux-keys/openfeature`. @default none
   */
  runWithContext?: RunWithContext;
}

interface Attached {
  auth: HttpAuth;
  options: FluxKeysOptions;
  cost: number;
  /** Scopes the route's guards required (recorded for least-privilege suggestions). */
  scopes: string[];
  /** Set when a route guard refuses the request after verification: recorded with the call. */
  outcome: UsageOutcome | undefined;
}

/**
 * Per-request state for the route guards, beside the request rather than on it: Express changes
 * every request's prototype, after which V8 gives each property added to it a new hidden class of
 * its own (a copy of the request's ~35 property descriptors, per request); `req.apiKey` is the
 * one Flux Keys adds (bench/RESULTS.md, "Issue 16, fourteenth session").
 */
const attached = new WeakMap<Request, Attached>();

function deny(
  attachment: Pick<Attached, "options">,
  denial: { error: FluxError; response: DenialResponse },
  req: Request,
  res: Response,
  next: NextFunction,
): void {
  const { error, response } = denial;
  const httpError = new FluxKeysHttpError(error, response.headers);
  if (attachment.options.onDenied) {
    attachment.options.onDenied(httpError, req, res, next);
  } else if (attachment.options.passToErrorHandler) {
    next(httpError);
  } else {
    res.status(response.status).set(response.headers).send(JSON.stringify(response.body));
  }
}

/** Verifies the API key of every request that reaches it. */
export function fluxKeys(flux: Flux, options: FluxKeysOptions = {}): RequestHandler {
  const { cost, onDenied: _onDenied, passToErrorHandler: _pass, runWithContext, ...authOptions } = options;
  const auth = createHttpAuth(flux, authOptions);
  // Not an async function: Express's router has no promise to watch, and a key verified in this
  // turn needs none at all.
  const middleware: RequestHandler = (req, res, next) => {
    const startedAt = performance.now();
    const units = typeof cost === "function" ? cost(req) : (cost ?? 1);
    const httpRequest = {
      method: req.method,
      url: req.originalUrl,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      remoteAddress: req.socket.remoteAddress,
    };
    // The guards this request will meet are checked before anything is consumed.
    const required = requirementsOf(req, middleware);
    const result = auth.authenticateNow(
      httpRequest,
      required.scopes.length === 0 && required.entitlements.length === 0
        ? { cost: units }
        : { cost: units, scopes: required.scopes, entitlement: required.entitlements },
    );
    // A key verified in this turn (cached, in-process limits) goes on to the route in it.
    if (!(result instanceof Promise))
      return proceed(result, req, res, next, httpRequest, required, units, startedAt);
    result
      .then((settled) => proceed(settled, req, res, next, httpRequest, required, units, startedAt))
      // As Express does for an async middleware: anything thrown reaches the error handlers.
      .catch(next);
  };
  /** Continues the request with the verification's result. */
  const proceed = (
    result: HttpAuthResult,
    req: Request,
    res: Response,
    next: NextFunction,
    httpRequest: HttpRequestLike,
    required: Requirement,
    units: number,
    startedAt: number,
  ): void => {
    if (!result.ok) {
      auth.recordDenial(result, { method: req.method, endpoint: required.endpoint, startedAt });
      deny({ options }, result, req, res, next);
      return;
    }
    const context = result.context;
    (req as ApiKeyRequest).apiKey = context;
    const attachment: Attached = { auth, options, cost: units, scopes: [], outcome: undefined };
    attached.set(req, attachment);
    // Plain setHeader: these values need none of res.set()'s content-type handling.
    for (const name in result.headers) res.setHeader(name, result.headers[name] as string);
    // `on`, not `once`: "finish" is emitted once, and `once` wraps the listener per request.
    res.on("finish", () => {
      const route = (req as Request & { route?: { path?: unknown } }).route;
      const endpoint = typeof route?.path === "string" ? `${req.baseUrl}${route.path}` : undefined;
      auth.record(context, {
        method: req.method,
        endpoint,
        status: res.statusCode,
        startedAt,
        scopes: attachment.scopes,
        request: httpRequest,
        units,
        outcome: attachment.outcome,
      });
    });
    if (runWithContext) runWithContext(context, next);
    else next();
  };
  // What API documents read of this middleware (see addFluxKeysToOpenApi).
  (middleware as FluxKeysMiddleware)[kFluxKeys] = {
    cost: typeof cost === "function" ? "per-request" : (cost ?? 1),
    apiKeyHeader: auth.options.apiKeyHeader,
  };
  return middleware;
}

const kFluxKeys = Symbol.for("flux-keys.express.middleware");
type FluxKeysMiddleware = RequestHandler & {
  [kFluxKeys]?: { cost: number | "per-request"; apiKeyHeader: string | false };
};

/**
 * Adds Flux Keys to an OpenAPI 3.1 document of this app (returned as a copy): the security
 * schemes, and for each operation whose request meets `fluxKeys()` the scopes and entitlement its
 * guards require (`security`, `x-flux-keys`) and the 401 / 403 / 429 problem responses.
 * Operations are matched to the app's routes by walking its router, as requests are.
 */
export function addFluxKeysToOpenApi<T extends object>(
  app: { router?: { stack?: unknown } },
  document: T,
  options: OpenApiOptions = {},
): T {
  const first = findFluxKeys(app.router?.stack);
  return addFluxKeysToDocument(
    document,
    (method, path) => {
      // `/v1/events/{id}` is matched as a request to `/v1/events/x` would be.
      const sample = path.replace(/\{[^}/]+\}/g, "x");
      const found = protectionOf(app.router, (handle) => isFluxKeys(handle), method, sample);
      if (found === null) return null;
      const marker = (found.middleware as FluxKeysMiddleware)[kFluxKeys];
      return {
        scopes: found.requirement.scopes,
        entitlement: found.requirement.entitlements,
        cost: marker?.cost ?? 1,
      };
    },
    { apiKeyHeader: first?.apiKeyHeader, ...options },
  );
}

function isFluxKeys(handle: unknown): boolean {
  return typeof handle === "function" && (handle as FluxKeysMiddleware)[kFluxKeys] !== undefined;
}

/** The first `fluxKeys()` in a router, depth first: whose header the document names. */
function findFluxKeys(stack: unknown): { apiKeyHeader: string | false } | undefined {
  if (!Array.isArray(stack)) return undefined;
  for (const layer of stack as Array<{ handle?: unknown }>) {
    const handle = layer.handle as FluxKeysMiddleware & { stack?: unknown };
    if (isFluxKeys(handle)) return handle[kFluxKeys];
    const nested = findFluxKeys(handle?.stack);
    if (nested !== undefined) return nested;
  }
  return undefined;
}

/** The requirements of the guards after `middleware` on this request's route (see route-requirements.ts). */
function requirementsOf(req: Request, middleware: RequestHandler): Requirement {
  const app = req.app as (Request["app"] & { router?: { stack?: unknown }; parent?: unknown }) | undefined;
  if (app === undefined) return { scopes: [], entitlements: [] };
  const query = req.originalUrl.indexOf("?");
  let path = query === -1 ? req.originalUrl : req.originalUrl.slice(0, query);
  // An app mounted inside another sees paths below its mount point.
  if (app.parent !== undefined && typeof app.mountpath === "string" && path.startsWith(app.mountpath)) {
    path = path.slice(app.mountpath.length) || "/";
  }
  return routeRequirements(app.router, middleware, req.method, path);
}

function guard(check: (context: KeyContext) => FluxError | null, requirement: Requirement): RequestHandler {
  const scopes = requirement.scopes;
  // Synchronous on the allowed path: no promise per request.
  const handler: RequestHandler = (req, res, next) => {
    const attachment = attached.get(req);
    const context = (req as Partial<ApiKeyRequest>).apiKey;
    if (attachment === undefined || context === undefined) {
      // fluxKeys() did not run before this guard: refuse rather than let the request through.
      return next(new Error("requireScopes/requireEntitlement need app.use(fluxKeys(flux)) first."));
    }
    const error = check(context);
    if (error === null) {
      attachment.scopes.push(...scopes);
      return next();
    }
    // Only where fluxKeys() could not see this guard: give back what it took.
    attachment.outcome = usageOutcomeOf(error.code) ?? undefined;
    attachment.auth
      .release(context, attachment.cost)
      .then(() => deny(attachment, attachment.auth.denied(error, true), req, res, next), next);
  };
  // fluxKeys() reads this to refuse the request before consuming anything.
  (handler as RequestHandler & { [kRequirement]: Requirement })[kRequirement] = requirement;
  return handler;
}

/** Lets the request through only when the key holds every one of these scopes. */
export function requireScopes(...scopes: string[]): RequestHandler {
  const required = scopes.flat();
  return guard((context) => requirementError(context, required, undefined), {
    scopes: required,
    entitlements: [],
  });
}

/** Lets the request through only when the key's org is entitled to this feature. */
export function requireEntitlement(name: string): RequestHandler {
  return guard((context) => requirementError(context, undefined, [name]), {
    scopes: [],
    entitlements: [name],
  });
}

export type { FluxError, KeyContext };

/**
 * The customer portal, mounted in one line: `app.use("/portal", fluxPortal(flux, options))`.
 * The base path is the mount path unless `options.basePath` says otherwise. Mount it before
 * `fluxKeys()` (API keys do not open the portal; portal sessions do not open the API).
 */
export function fluxPortal(flux: Flux, options: PortalOptions = {}): RequestHandler {
  const handlers = new Map<string, PortalHandler>();
  return (req, res, next) => {
    const basePath = options.basePath ?? (req.baseUrl || "/portal");
    let handler = handlers.get(basePath);
    if (handler === undefined) {
      handler = createPortalHandler(portalServices(flux), { ...options, basePath });
      handlers.set(basePath, handler);
    }
    serveWeb(handler, req, res, req.originalUrl).catch(next);
  };
}

/**
 * Any Flux Keys Web handler (`Request` in, `Response` out) as Express middleware, e.g. GitHub's
 * secret-scanning alerts: `app.post("/github/secret-scanning", fluxWebHandler(handler))`. Mount it
 * before `express.json()`: signatures are checked over the raw body.
 */
export function fluxWebHandler(
  handler: (request: globalThis.Request) => Promise<globalThis.Response>,
): RequestHandler {
  return (req, res, next) => {
    serveWeb(handler, req, res, req.originalUrl).catch(next);
  };
}

/**
 * The `flux_*` metrics for Prometheus: `app.get("/metrics", fluxMetrics(flux))`. Mount it before
 * `fluxKeys()` (a scraper has no API key), on a path your proxy keeps internal.
 */
export function fluxMetrics(flux: Flux, options: PrometheusOptions = {}): RequestHandler {
  return fluxWebHandler(prometheusHandler(flux, options));
}

export { morganUrl, pinoHttpSerializers, redactUrl } from "./log-redaction.js";
