import {
  type HttpAuth,
  type HttpAuthResult,
  type HttpRequestLike,
  type KeyContext,
  type RouteRequirements,
  requirementError,
  usageOutcomeOf,
} from "@flux-keys/core";
import { type CanActivate, type ExecutionContext, Inject, Injectable } from "@nestjs/common";
import { Reflector } from "@nestjs/core";
import { ApiKeyDeniedException } from "./api-key.exception.js";
import {
  COST_KEY,
  ENTITLEMENT_KEY,
  FLUX_KEYS_AUTH,
  FLUX_KEYS_OPTIONS,
  PUBLIC_KEY,
  SCOPES_KEY,
} from "./flux-keys.constants.js";
import { kVerified, type VerifiedByMiddleware } from "./flux-keys.middleware.js";
import type { FluxKeysModuleOptions } from "./flux-keys.options.js";

/** What the guard needs of a request, on either platform. */
interface PlatformRequest {
  method: string;
  url: string;
  originalUrl?: string;
  raw?: { url?: string; rawHeaders?: string[]; [kVerified]?: VerifiedByMiddleware };
  [kVerified]?: VerifiedByMiddleware;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders?: string[];
  socket: { remoteAddress?: string };
  route?: { path?: unknown };
  baseUrl?: string;
  routeOptions?: { url?: string };
  apiKey?: KeyContext | null;
  /** Express: the response of this request. */
  res?: PlatformResponse;
}

/** A GraphQL context as the drivers build it (Apollo: `{ req, res? }`; Mercurius: `{ reply }`). */
interface GraphqlContext {
  req?: PlatformRequest;
  res?: PlatformResponse;
  reply?: PlatformResponse & { request?: PlatformRequest };
}

/** The HTTP request behind a GraphQL resolver call (resolver args: root, args, context, info). */
export function graphqlRequest(context: ExecutionContext): PlatformRequest | undefined {
  const gql = context.getArgByIndex<GraphqlContext | undefined>(2);
  return gql?.req ?? gql?.reply?.request;
}

/** The response in a GraphQL context (`res`, `reply`, or `req.res`), if the driver put one there. */
function graphqlResponse(context: ExecutionContext, request: PlatformRequest): PlatformResponse | undefined {
  const gql = context.getArgByIndex<GraphqlContext | undefined>(2);
  return gql?.res ?? gql?.reply ?? request.res;
}

/** `Query.events`: the usage endpoint of a GraphQL field (no route template there). */
function graphqlField(context: ExecutionContext): string {
  const info = context.getArgByIndex<{ parentType?: { name?: string }; fieldName?: string } | undefined>(3);
  return `${info?.parentType?.name ?? "GraphQL"}.${info?.fieldName ?? "?"}`;
}

interface RawResponse {
  statusCode: number;
  setHeader(name: string, value: string): void;
  on(event: "finish", listener: () => void): void;
}

/** The platform's response: Express's (a raw response itself) or Fastify's reply (`raw` inside). */
interface PlatformResponse extends RawResponse {
  raw?: RawResponse;
  headers?(values: Record<string, string>): unknown;
}

/**
 * Verifies the API key of every route it guards, unless the route or its controller is
 * `@Public()`. Route requirements come from `@Scopes`, `@Entitlement` and `@RateLimitCost`.
 * Extension points are protected: override `getRequirements`, `getRequest` or `onDenied`.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    @Inject(Reflector) protected readonly reflector: Reflector,
    @Inject(FLUX_KEYS_AUTH) protected readonly auth: HttpAuth,
    @Inject(FLUX_KEYS_OPTIONS) protected readonly options: FluxKeysModuleOptions,
  ) {}

  /**
   * A boolean when the answer is known in this turn (a cached key on in-process limits, a public
   * route, a refusal before any I/O): Nest then goes on to the next guard without awaiting. A
   * promise when the key must be read or the limits asked (Redis). A refusal is thrown either way.
   */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const type = context.getType<string>();
    if (type !== "http" && type !== "graphql") {
      // ws, rpc…: no HTTP request to read a key from. Fail closed unless the handler is public or
      // the app said this context type is guarded by something else.
      return this.getRequirements(context).public === true || this.allowedContexts.has(type);
    }
    const requirements = this.getRequirements(context);
    const request = this.getRequest(context) as PlatformRequest | undefined;
    // A GraphQL operation with no HTTP request behind it (a subscription over a socket): refused.
    if (request === undefined || request === null) return requirements.public === true;
    if (requirements.public === true) {
      request.apiKey ??= null;
      return true;
    }
    const verified = request.raw?.[kVerified] ?? request[kVerified];
    if (verified !== undefined) return this.checkVerified(verified, requirements, request, context);
    const startedAt = performance.now();
    const raw = request.raw;
    const httpRequest: HttpRequestLike = {
      method: request.method,
      url: request.originalUrl ?? raw?.url ?? request.url,
      headers: request.headers,
      rawHeaders: raw?.rawHeaders ?? request.rawHeaders,
      remoteAddress: request.socket?.remoteAddress,
    };
    const result = this.auth.authenticateNow(httpRequest, requirements);
    if (!(result instanceof Promise))
      return this.admit(result, context, type, requirements, request, httpRequest, startedAt);
    return result.then((settled) =>
      this.admit(settled, context, type, requirements, request, httpRequest, startedAt),
    );
  }

  /** The request with its verification's result: the key attached and recorded, or the denial. */
  private admit(
    result: HttpAuthResult,
    context: ExecutionContext,
    type: string,
    requirements: RouteRequirements,
    request: PlatformRequest,
    httpRequest: HttpRequestLike,
    startedAt: number,
  ): boolean {
    if (!result.ok) {
      this.auth.recordDenial(result, {
        method: request.method,
        endpoint: this.endpointOf(type, context, request),
        startedAt,
      });
      return this.onDenied(new ApiKeyDeniedException(result.error, result.response), context);
    }
    const verified = result.context;
    request.apiKey = verified;
    if (type === "graphql") {
      // Every other guarded field of this operation reuses this verification (one HTTP request,
      // consumed once); their own requirements are still checked.
      request[kVerified] = { context: verified, cost: 0 };
    }
    const platformResponse =
      type === "graphql"
        ? graphqlResponse(context, request)
        : context.switchToHttp().getResponse<PlatformResponse>();
    const response = platformResponse?.raw ?? platformResponse;
    if (platformResponse === undefined || response === undefined) {
      // No response object in this GraphQL context (Apollo on Fastify): recorded now.
      this.recordCall(verified, context, type, requirements, request, httpRequest, startedAt, 200);
      return true;
    }
    if (platformResponse.raw !== undefined && platformResponse.headers !== undefined) {
      // Fastify: through the reply, so that Fastify still writes all its headers in one writeHead
      // (a header set on the raw response sends every other one through setHeader too).
      platformResponse.headers(result.headers);
    } else {
      for (const name in result.headers) response.setHeader(name, result.headers[name] as string);
    }
    // `on`, not `once`: "finish" is emitted once, and `once` wraps the listener per request. An
    // arrow written in place: a named one (`const record = () => …`) costs a `defineProperty` per
    // request wherever the code is built with esbuild's `keepNames` (tsx; Nest bundles need it).
    response.on("finish", () =>
      this.recordCall(
        verified,
        context,
        type,
        requirements,
        request,
        httpRequest,
        startedAt,
        response.statusCode,
      ),
    );
    return true;
  }

  /** Usage, under the route template (the field, under GraphQL), with the status sent. */
  private recordCall(
    verified: KeyContext,
    context: ExecutionContext,
    type: string,
    requirements: RouteRequirements,
    request: PlatformRequest,
    httpRequest: HttpRequestLike,
    startedAt: number,
    status: number,
  ): void {
    this.auth.record(verified, {
      method: request.method,
      endpoint: this.endpointOf(type, context, request),
      status,
      startedAt,
      scopes: requirements.scopes,
      request: httpRequest,
      units: requirements.cost ?? 1,
    });
  }

  private get allowedContexts(): ReadonlySet<string> {
    this.allowed ??= new Set(this.options.allowContexts ?? []);
    return this.allowed;
  }
  private allowed: ReadonlySet<string> | undefined;

  /**
   * FluxKeysMiddleware already verified this request (and consumed its cost): only the controller
   * route's scopes and entitlement are checked; a refusal gives back what the middleware took.
   */
  private async checkVerified(
    verified: VerifiedByMiddleware,
    requirements: RouteRequirements,
    request: PlatformRequest,
    context: ExecutionContext,
  ): Promise<boolean> {
    const entitlement = requirements.entitlement;
    const entitlements = typeof entitlement === "string" ? [entitlement] : entitlement;
    const error = requirementError(verified.context, requirements.scopes, entitlements);
    if (error === null) {
      request.apiKey = verified.context;
      return true;
    }
    // The middleware records the call when its response finishes: with this refusal.
    verified.outcome = usageOutcomeOf(error.code) ?? undefined;
    if (verified.cost > 0) await this.auth.release(verified.context, verified.cost);
    return this.onDenied(new ApiKeyDeniedException(error, this.auth.denied(error, true).response), context);
  }

  /** Requirements per controller class and handler: metadata is fixed once the app is built. */
  private readonly requirementsByRoute = new WeakMap<object, WeakMap<object, RouteRequirements>>();

  /** The route's requirements: handler metadata overrides the controller's. Read once per handler. */
  protected getRequirements(context: ExecutionContext): RouteRequirements {
    const controller = context.getClass();
    let byHandler = this.requirementsByRoute.get(controller);
    if (byHandler === undefined) {
      byHandler = new WeakMap();
      this.requirementsByRoute.set(controller, byHandler);
    }
    const handler = context.getHandler();
    let requirements = byHandler.get(handler);
    if (requirements === undefined) {
      requirements = Object.freeze(this.readRequirements(context));
      byHandler.set(handler, requirements);
    }
    return requirements;
  }

  private readRequirements(context: ExecutionContext): RouteRequirements {
    const targets = [context.getHandler(), context.getClass()];
    const scopes = this.reflector.getAllAndOverride<string[] | undefined>(SCOPES_KEY, targets);
    const entitlement = this.reflector.getAllAndOverride<string[] | undefined>(ENTITLEMENT_KEY, targets);
    const cost = this.reflector.getAllAndOverride<number | undefined>(COST_KEY, targets);
    return {
      public: this.reflector.getAllAndOverride<boolean | undefined>(PUBLIC_KEY, targets) === true,
      ...(scopes ? { scopes } : {}),
      ...(entitlement ? { entitlement } : {}),
      cost: cost ?? this.options.cost ?? 1,
    };
  }

  /** The HTTP request: the platform's, or under GraphQL the one in its context (as `GqlExecutionContext`). */
  protected getRequest(context: ExecutionContext): PlatformRequest {
    if (context.getType<string>() === "graphql") return graphqlRequest(context) as PlatformRequest;
    return context.switchToHttp().getRequest<PlatformRequest>();
  }

  /** Throws the denial (handled by ApiKeyExceptionFilter unless you catch it yourself). */
  protected onDenied(exception: ApiKeyDeniedException, _context: ExecutionContext): never {
    throw exception;
  }

  /** What usage records the call under: the route template, or the field under GraphQL. */
  private endpointOf(type: string, context: ExecutionContext, request: PlatformRequest): string | undefined {
    return type === "graphql" ? graphqlField(context) : this.routeTemplate(request);
  }

  private routeTemplate(request: PlatformRequest): string | undefined {
    // Read once: on Fastify `routeOptions` is a getter that builds a new object on every read.
    const url = request.routeOptions?.url;
    if (url) return url;
    const path = request.route?.path;
    return typeof path === "string" ? `${request.baseUrl ?? ""}${path}` : undefined;
  }
}
