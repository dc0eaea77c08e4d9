/**
 * Everything an HTTP adapter needs, decided once here: which credential the request carries, the
 * verification (with the route's scopes, entitlement and cost), the response headers, the denial
 * as RFC 9457 problem details, and the usage record. Adapters only translate to their framework.
 */
import { FluxConfigError, FluxError } from "../errors.js";
import type { Flux } from "../flux.js";
import type { CheckResult, DeniedKey } from "../keys/keys.js";
import { rateLimitHeaders } from "../limits/headers.js";
import { type HttpAuthDependencies, seamsOf } from "../seams.js";
import type { KeyContext } from "../types.js";
import { outcomeOf, type UsageOutcome } from "../usage/usage-outcomes.js";
import { clientAddress } from "./client-address.js";
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
  /**
   * Record in `flux.usage` every request whose key was identified, with its outcome (served or
   * why refused), and count the others per instance (`flux.usage.stats().unidentified`). @default true
   */
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

/** A refused request; `key` is set when its key was identified (then usage records it). */
export interface HttpAuthDenial {
  ok: false;
  error: FluxError;
  response: DenialResponse;
  key?: DeniedKey | undefined;
}

export type HttpAuthResult =
  | { ok: true; context: KeyContext; headers: Record<string, string> }
  | HttpAuthDenial;

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
  private readonly check: HttpAuthDependencies["check"];

  constructor(
    readonly flux: Flux,
    options: HttpAuthOptions = {},
  ) {
    const dependencies = seamsOf(flux).httpAuth;
    this.options = resolveHttpAuthOptions(options, dependencies.trust);
    this.check = dependencies.check;
    this.credentialOptions = {
      authorizationHeader: this.options.authorizationHeader,
      apiKeyHeader: this.options.apiKeyHeader,
      queryParameter: this.options.queryParameter,
      keyPrefix: dependencies.keyPrefix,
    };
  }

  /**
   * Verifies the request's key against the route's requirements. A denied request (bad key,
   * missing scope or entitlement, limit) consumes nothing from the key's limits or quota.
   */
  async authenticate(request: HttpRequestLike, route: RouteRequirements = {}): Promise<HttpAuthResult> {
    return this.authenticateNow(request, route);
  }

  /**
   * `authenticate()` for adapters on the hot path: the result itself when it is known in this
   * turn (a cached key on in-process limits, or a request refused before any I/O), else a
   * promise of it. Adapters continue the request at once on a result: no promise and no
   * microtask between the framework's hook and the handler. May throw where `authenticate()`
   * would reject.
   */
  authenticateNow(
    request: HttpRequestLike,
    route: RouteRequirements = {},
  ): HttpAuthResult | Promise<HttpAuthResult> {
    const credential = extractCredential(
      request.headers,
      request.url,
      this.credentialOptions,
      request.rawHeaders,
    );
    if (!credential.ok) {
      if (this.options.usage) this.flux.usage.countUnidentified(credential.error.code);
      return this.denied(credential.error, false);
    }
    // One plain options object per request (no spreads on the hot path); undefined means "none".
    const checked = this.check(credential.key, {
      cost: route.cost ?? 1,
      clientAddress: clientAddress(request, this.options.trust) ?? undefined,
      scopes: route.scopes,
      entitlements: entitlementList(route),
    });
    const presented = credential.key !== undefined;
    if (!(checked instanceof Promise)) return this.answer(checked, presented);
    return checked.then((result) => this.answer(result, presented));
  }

  /** A check's result as the adapters' result: the headers of a success, or the denial. */
  private answer(result: CheckResult, keyPresented: boolean): HttpAuthResult {
    if (!result.valid) {
      if (result.key === undefined && this.options.usage)
        this.flux.usage.countUnidentified(result.error.code);
      return this.denied(result.error, keyPresented, result.key);
    }
    return { ok: true, context: result.context, headers: this.successHeaders(result.context) };
  }

  /** The denial for an error (problem details, WWW-Authenticate, Retry-After, RateLimit). */
  denied(error: FluxError, keyPresented: boolean, key?: DeniedKey): HttpAuthDenial {
    return {
      ok: false,
      error,
      response: denialResponse(error, { realm: this.options.realm, keyPresented }),
      key,
    };
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
   * Records a refused request whose key was identified (revoked, expired, address, scope,
   * entitlement, limits) with its outcome; a no-op for the others, which `authenticate()` counted.
   * Call it where the denial is answered, with the route template when it is known.
   */
  recordDenial(
    denial: HttpAuthDenial,
    call: { method: string; endpoint: string | undefined; startedAt: number; status?: number },
  ): void {
    if (denial.key === undefined || !this.options.usage) return;
    const outcome = outcomeOf(denial.error.code);
    if (outcome === null) return;
    this.flux.usage.record({
      keyId: denial.key.keyId,
      orgId: denial.key.orgId,
      method: call.method,
      endpoint: call.endpoint ?? "(unmatched)",
      status: call.status ?? denial.response.status,
      latencyMs: performance.now() - call.startedAt,
      // A refused call consumed nothing, so it costs nothing to a meter that bills by units.
      units: 0,
      outcome,
    });
  }

  /**
   * Records a verified request after its response (route template, final status, latency), the
   * scopes its route required, and, during a rotation grace, the client that made it. A request
   * its route refused after verification (a later guard) passes that refusal's `outcome`.
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
      /** @default 'allowed' */
      outcome?: UsageOutcome | undefined;
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
    const outcome = call.outcome ?? "allowed";
    this.flux.usage.record({
      keyId: context.keyId,
      orgId: context.orgId,
      method: call.method,
      endpoint: call.endpoint ?? "(unmatched)",
      status: call.status,
      latencyMs: performance.now() - call.startedAt,
      units: outcome === "allowed" ? (call.units ?? 1) : 0,
      outcome,
    });
  }
}

export function createHttpAuth(flux: Flux, options?: HttpAuthOptions): HttpAuth {
  return new HttpAuth(flux, options);
}

export { FluxError };
