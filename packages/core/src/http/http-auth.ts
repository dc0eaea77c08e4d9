/**
 * Everything an HTTP adapter needs, decided once here: which credential the request carries, the
 * verification (with the route's scopes, entitlement and cost), the response headers, the denial
 * as RFC 9457 problem details, and the usage record. Adapters only translate to their framework.
 */
import { FluxConfigError, FluxError } from "../errors.js";
import type { Flux } from "../flux.js";
import { clientAddress } from "../limits/client-address.js";
import { rateLimitHeaders } from "../limits/headers.js";
import type { KeyContext } from "../types.js";
import { type CredentialOptions, extractCredential, type HeaderBag } from "./credentials.js";
import { type DenialResponse, denialResponse } from "./problem.js";

export interface HttpAuthOptions {
  /** Header carrying `Bearer <key>`. @default 'authorization' */
  authorizationHeader?: string;
  /** Header carrying the bare key; `false` to accept only the Authorization header. @default 'x-api-key' */
  apiKeyHeader?: string | false;
  /**
   * Query parameter allowed to carry the key. Keys in URLs end up in access logs and browser
   * history, so by default any key-looking query parameter is refused with 400. @default false
   */
  queryParameter?: string | false;
  /** `realm` of `WWW-Authenticate`. @default 'api' */
  realm?: string;
  /** Documentation sent as `Link: <…>; rel="deprecation"` to keys in a rotation grace. @default none */
  rotationDocsUrl?: string;
  /** Record every verified request in `flux.usage`. @default true */
  usage?: boolean;
}

/** What one route requires. */
export interface RouteRequirements {
  /** All of these scopes. */
  scopes?: readonly string[];
  /** This entitlement (or all of these). */
  entitlement?: string | readonly string[];
  /** Units this route costs. @default 1 */
  cost?: number;
  /** Skip verification entirely. @default false */
  public?: boolean;
}

export interface HttpRequestLike {
  method: string;
  /** Path and query as received (`req.url`). */
  url: string;
  headers: HeaderBag;
  /**
   * Node's `req.rawHeaders` (name, value, name, value…): pass it so that a repeated credential
   * header is seen (Node keeps only the first `Authorization` in `req.headers`).
   */
  rawHeaders?: readonly string[];
  /** The socket's peer address. */
  remoteAddress?: string | null;
}

export type HttpAuthResult =
  | { ok: true; context: KeyContext; headers: Record<string, string> }
  | { ok: false; error: FluxError; response: DenialResponse };

export interface ResolvedHttpAuthOptions {
  authorizationHeader: string;
  apiKeyHeader: string | false;
  queryParameter: string | false;
  realm: string;
  /** The instance's `trustProxy` (from `createFlux`), compiled. */
  trust: (address: string, hop: number) => boolean;
  rotationDocsUrl: string | undefined;
  usage: boolean;
}

const KNOWN = new Set([
  "authorizationHeader",
  "apiKeyHeader",
  "queryParameter",
  "realm",
  "rotationDocsUrl",
  "usage",
]);

export function resolveHttpAuthOptions(
  options: HttpAuthOptions = {},
  trust: ResolvedHttpAuthOptions["trust"] = () => false,
): ResolvedHttpAuthOptions {
  for (const name of Object.keys(options)) {
    if (name === "trustProxy") {
      // One setting for the whole instance: the portal and the limiter must see the same client.
      throw new FluxConfigError(
        "invalid_option",
        "trustProxy is no longer an adapter option: set it once on createFlux({ trustProxy }).",
      );
    }
    if (!KNOWN.has(name)) throw new FluxConfigError("unknown_option", `Unknown API key option '${name}'.`);
  }
  return {
    authorizationHeader: (options.authorizationHeader ?? "authorization").toLowerCase(),
    apiKeyHeader:
      options.apiKeyHeader === false ? false : (options.apiKeyHeader ?? "x-api-key").toLowerCase(),
    queryParameter: options.queryParameter ?? false,
    realm: options.realm ?? "api",
    trust,
    rotationDocsUrl: options.rotationDocsUrl,
    usage: options.usage ?? true,
  };
}

function entitlementList(route: RouteRequirements): readonly string[] | undefined {
  const value = route.entitlement;
  if (value === undefined) return undefined;
  return typeof value === "string" ? [value] : value;
}

export class HttpAuth {
  readonly options: ResolvedHttpAuthOptions;
  private readonly credentialOptions: CredentialOptions;

  constructor(
    readonly flux: Flux,
    options: HttpAuthOptions = {},
  ) {
    this.options = resolveHttpAuthOptions(options, flux.internals.options.trust);
    this.credentialOptions = {
      authorizationHeader: this.options.authorizationHeader,
      apiKeyHeader: this.options.apiKeyHeader,
      queryParameter: this.options.queryParameter,
      keyPrefix: flux.internals.options.keyPrefix,
    };
  }

  /**
   * Verifies the request's key against the route's requirements. A denied request (bad key,
   * missing scope or entitlement, limit) consumes nothing from the key's limits or quota.
   */
  async authenticate(request: HttpRequestLike, route: RouteRequirements = {}): Promise<HttpAuthResult> {
    const credential = extractCredential(
      request.headers,
      request.url,
      this.credentialOptions,
      request.rawHeaders,
    );
    if (!credential.ok) return this.denied(credential.error, false);
    // One plain options object per request (no spreads on the hot path); undefined means "none".
    const result = await this.flux.keys.check(credential.key, {
      cost: route.cost ?? 1,
      clientAddress: clientAddress(request, this.options.trust) ?? undefined,
      scopes: route.scopes,
      entitlements: entitlementList(route),
    });
    if (!result.valid) return this.denied(result.error, credential.key !== undefined);
    return { ok: true, context: result.context, headers: this.successHeaders(result.context) };
  }

  /** The denial for an error (problem details, WWW-Authenticate, Retry-After, RateLimit). */
  denied(error: FluxError, keyPresented: boolean): { ok: false; error: FluxError; response: DenialResponse } {
    return { ok: false, error, response: denialResponse(error, { realm: this.options.realm, keyPresented }) };
  }

  /** RateLimit fields, and Deprecation / Sunset / Link while the key is in a rotation grace. */
  successHeaders(context: KeyContext): Record<string, string> {
    const headers = rateLimitHeaders(context.rateLimit);
    if (context.rotation !== null) {
      headers.Deprecation = `@${Math.floor(this.flux.keys.now() / 1000)}`;
      headers.Sunset = context.rotation.sunsetAt.toUTCString();
      if (this.options.rotationDocsUrl) {
        headers.Link = `<${this.options.rotationDocsUrl}>; rel="deprecation"; type="text/html"`;
      }
    }
    return headers;
  }

  /**
   * Gives back what a request took from the key's limits and quota, for a denial decided after
   * verification (Express's route-level guards run after the middleware has verified).
   */
  async release(context: KeyContext, cost: number): Promise<void> {
    await this.flux.keys.release(context, cost);
  }

  /**
   * Records a verified request after its response (route template, final status, latency), the
   * scopes its route required, and, during a rotation grace, the client that made it.
   */
  record(
    context: KeyContext,
    call: {
      method: string;
      endpoint: string | undefined;
      status: number;
      startedAt: number;
      scopes?: readonly string[] | undefined;
      request?: HttpRequestLike;
      /** What the request cost (its route's `cost`). @default 1 */
      units?: number;
    },
  ) {
    if (context.rotation !== null) {
      // During a rotation grace: which client still uses the old key (address, user agent).
      const request = call.request;
      const agent = request?.headers["user-agent"];
      this.flux.keys.observe(context, {
        scopes: call.scopes,
        clientAddress: request === undefined ? null : clientAddress(request, this.options.trust),
        userAgent: typeof agent === "string" ? agent : null,
      });
    } else if (call.scopes !== undefined && call.scopes.length > 0) {
      this.flux.keys.observe(context, { scopes: call.scopes });
    }
    if (!this.options.usage) return;
    this.flux.usage.record({
      keyId: context.keyId,
      orgId: context.orgId,
      method: call.method,
      endpoint: call.endpoint ?? "(unmatched)",
      status: call.status,
      latencyMs: performance.now() - call.startedAt,
      units: call.units ?? 1,
    });
  }
}

export function createHttpAuth(flux: Flux, options?: HttpAuthOptions): HttpAuth {
  return new HttpAuth(flux, options);
}

export { FluxError };
