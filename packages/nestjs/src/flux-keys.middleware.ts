import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  HttpAuth,
  HttpAuthResult,
  HttpRequestLike,
  KeyContext,
  RouteRequirements,
  UsageOutcome,
} from "@flux-keys/core";
import { Inject, Injectable, type NestMiddleware, type Type } from "@nestjs/common";
import { FLUX_KEYS_AUTH, FLUX_KEYS_OPTIONS } from "./flux-keys.constants.js";
import type { FluxKeysModuleOptions } from "./flux-keys.options.js";

/** The request as a Nest middleware sees it: Express's request, or the raw one under Fastify. */
type MiddlewareRequest = IncomingMessage & {
  originalUrl?: string;
  baseUrl?: string;
  route?: { path?: unknown };
  apiKey?: KeyContext | null;
  [kVerified]?: VerifiedByMiddleware;
};

/** What was verified and consumed for this request, for ApiKeyGuard on the same request. */
export interface VerifiedByMiddleware {
  context: KeyContext;
  /** Given back if the guard refuses the route (0: nothing to give back). */
  cost: number;
  /** Set by the guard when it refuses the route: usage records the call with it. */
  outcome?: UsageOutcome;
}

/**
 * Set on the (raw) request once FluxKeysMiddleware has verified it: ApiKeyGuard then checks the
 * controller route's requirements against that context instead of verifying (and consuming) again.
 */
export const kVerified = Symbol.for("@flux-keys/nestjs:verified");

/** Requirements of a middleware-protected route, plus the endpoint name usage records it under. */
export interface MiddlewareRequirements extends Omit<RouteRequirements, "public"> {
  /** Recorded in usage as the endpoint (no route template exists for middleware). @default '(middleware)' */
  endpoint?: string;
}

/**
 * Verifies the API key of routes that no guard sees: paths served by middleware
 * (`consumer.apply(FluxKeysMiddleware, yourHandler).forRoutes(...)`) or by `app.use`. Guards,
 * ApiKeyGuard included, run for controller routes only. Works on the Express and the Fastify
 * platform; `FluxKeysMiddleware.requiring({ scopes, entitlement, cost })` adds requirements.
 */
@Injectable()
export class FluxKeysMiddleware implements NestMiddleware {
  constructor(
    @Inject(FLUX_KEYS_AUTH) protected readonly auth: HttpAuth,
    @Inject(FLUX_KEYS_OPTIONS) protected readonly options: FluxKeysModuleOptions,
  ) {}

  /** What the routes behind this middleware require. */
  protected getRequirements(): MiddlewareRequirements {
    return { cost: this.options.cost ?? 1 };
  }

  use(req: MiddlewareRequest, res: ServerResponse, next: (error?: unknown) => void): void {
    const requirements = this.getRequirements();
    const startedAt = performance.now();
    const httpRequest = {
      method: req.method ?? "GET",
      url: req.originalUrl ?? req.url ?? "/",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      remoteAddress: req.socket?.remoteAddress,
    };
    const route = { ...requirements, cost: requirements.cost ?? this.options.cost ?? 1 };
    const result = this.auth.authenticateNow(httpRequest, route);
    if (!(result instanceof Promise)) {
      this.proceed(result, req, res, next, httpRequest, requirements, route.cost, startedAt);
      return;
    }
    result
      .then((settled) =>
        this.proceed(settled, req, res, next, httpRequest, requirements, route.cost, startedAt),
      )
      .catch(next);
  }

  /** Continues with the verification's result (in this turn when it is known). */
  private proceed(
    result: HttpAuthResult,
    req: MiddlewareRequest,
    res: ServerResponse,
    next: (error?: unknown) => void,
    httpRequest: HttpRequestLike & { method: string },
    requirements: MiddlewareRequirements,
    cost: number,
    startedAt: number,
  ): void {
    if (!result.ok) {
      this.auth.recordDenial(result, {
        method: httpRequest.method,
        endpoint: requirements.endpoint ?? routeTemplate(req) ?? "(middleware)",
        startedAt,
      });
      // Answered here, as problem details: no exception filter runs for middleware.
      res.writeHead(result.response.status, result.response.headers);
      res.end(JSON.stringify(result.response.body));
      return;
    }
    const context = result.context;
    req.apiKey = context;
    const verified: VerifiedByMiddleware = { context, cost };
    req[kVerified] = verified;
    for (const name in result.headers) res.setHeader(name, result.headers[name] as string);
    res.on("finish", () => {
      this.auth.record(context, {
        outcome: verified.outcome,
        method: httpRequest.method,
        endpoint: requirements.endpoint ?? routeTemplate(req) ?? "(middleware)",
        status: res.statusCode,
        startedAt,
        scopes: requirements.scopes,
        request: httpRequest,
        units: cost,
      });
    });
    next();
  }

  /** A FluxKeysMiddleware with these requirements, for `consumer.apply(...)`. */
  static requiring(requirements: MiddlewareRequirements): Type<FluxKeysMiddleware> {
    const fixed = Object.freeze({ ...requirements });
    @Injectable()
    class FluxKeysMiddlewareWithRequirements extends FluxKeysMiddleware {
      protected override getRequirements(): MiddlewareRequirements {
        return { cost: this.options.cost ?? 1, ...fixed };
      }
    }
    return FluxKeysMiddlewareWithRequirements;
  }
}

function routeTemplate(req: MiddlewareRequest): string | undefined {
  const path = req.route?.path;
  return typeof path === "string" ? `${req.baseUrl ?? ""}${path}` : undefined;
}
