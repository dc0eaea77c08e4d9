/**
 * The portal as one function: a Web `Request` in, a `Response` out. Pages, assets and the JSON API
 * the pages use all live under `basePath`; an adapter only converts its request and response.
 */
import { z } from "zod";
import { FluxError } from "../errors.js";
import type { Flux } from "../flux.js";
import { scopeCovers } from "../scopes.js";
import type { Actor, ApiKeyInfo } from "../types.js";
import { displayName, parseInput } from "../validation.js";
import { PORTAL_SCRIPT } from "./assets/portal-script.js";
import { PORTAL_STYLES } from "./assets/portal-styles.js";
import {
  checkCrossSite,
  clearCookie,
  clientFacingUrl,
  csrfToken,
  internalProblem,
  json,
  newCsrfSeed,
  problem,
  readCookie,
  readJson,
  respond,
  setCookie,
} from "./http.js";
import { messagePage, portalPage } from "./page.js";
import {
  PORTAL_ROLES,
  type PortalCustomer,
  type PortalOptions,
  type PortalRequestContext,
  type ResolvedPortalOptions,
  resolvePortalOptions,
} from "./portal-options.js";
import {
  type CreateSessionInput,
  type PortalSessionLink,
  type PortalSessionRecord,
  PortalSessions,
} from "./sessions.js";

export interface PortalHandler {
  (request: Request, context?: PortalRequestContext): Promise<Response>;
  /** The resolved mount path ('' at the root). */
  readonly basePath: string;
  /** A single-use sign-in link for this portal (see `flux.portal.createSession`). */
  createSession(input: CreateSessionInput): Promise<PortalSessionLink>;
}

interface Identity {
  customer: PortalCustomer;
  /** The link session, when the customer came through one. */
  session: PortalSessionRecord | null;
  /** What the CSRF token is derived from; undefined until the CSRF cookie is set. */
  seed: string | undefined;
}

type Display = "active" | "expiring" | "grace" | "revoked" | "expired";

const RANGES = {
  "1h": { ms: 3_600_000, granularity: "minute" },
  "24h": { ms: 86_400_000, granularity: "hour" },
  "7d": { ms: 7 * 86_400_000, granularity: "hour" },
  "30d": { ms: 30 * 86_400_000, granularity: "day" },
} as const;

const GRACE = { none: 0, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000 } as const;

const scopeList = z.array(z.string().max(128)).max(100);
const createSchema = z
  .object({
    name: displayName,
    scopes: scopeList,
    expiresInDays: z.number().int().min(1).max(3650).nullable().optional(),
    expiresAt: z.iso.datetime({ offset: true }).nullable().optional(),
  })
  .strict();
const updateSchema = z.object({ name: displayName.optional(), scopes: scopeList.optional() }).strict();
const rotateSchema = z.object({ gracePeriod: z.enum(["none", "1h", "24h", "7d"]) }).strict();
const revokeSchema = z.object({ reason: z.string().trim().max(500).optional() }).strict();

export function createPortalHandler(flux: Flux, options: PortalOptions = {}): PortalHandler {
  const portal = new PortalApp(flux, resolvePortalOptions(options));
  const handler = ((request: Request, context?: PortalRequestContext) =>
    portal.handle(request, context ?? {})) as PortalHandler;
  Object.defineProperty(handler, "basePath", { value: portal.options.basePath, enumerable: true });
  Object.defineProperty(handler, "createSession", {
    value: (input: CreateSessionInput) => portal.createSession(input),
    enumerable: true,
  });
  return handler;
}

/** Builds the URL of a link: absolute under `baseUrl`, else a path under `basePath`. */
export function linkUrl(token: string, basePath: string, baseUrl: string | undefined): string {
  return `${baseUrl ?? basePath}/login/${token}`;
}

class PortalApp {
  private readonly sessions: PortalSessions;

  constructor(
    private readonly flux: Flux,
    readonly options: ResolvedPortalOptions,
  ) {
    this.sessions = new PortalSessions(flux);
  }

  private get logger() {
    return this.flux.internals.options.logger;
  }

  private now(): number {
    return this.flux.internals.options.clock();
  }

  async createSession(input: CreateSessionInput): Promise<PortalSessionLink> {
    const { token, expiresAt } = await this.sessions.createLink(input);
    return { url: linkUrl(token, this.options.basePath, this.options.baseUrl), expiresAt };
  }

  async handle(request: Request, context: PortalRequestContext): Promise<Response> {
    let url: URL;
    try {
      url = clientFacingUrl(
        new URL(request.url),
        request.headers,
        context.remoteAddress,
        this.flux.internals.options.trust,
      );
    } catch {
      return problem(new FluxError("invalid_request", { detail: "The request URL must be absolute." }));
    }
    const base = this.options.basePath;
    const path =
      url.pathname === base
        ? "/"
        : url.pathname.startsWith(`${base}/`)
          ? url.pathname.slice(base.length)
          : null;
    if (path === null) return problem(new FluxError("not_found"));
    const method = request.method === "HEAD" ? "GET" : request.method;
    const api = path.startsWith("/api/");
    try {
      if (method === "GET" && path.startsWith("/assets/")) return this.asset(path);
      // Only a real GET spends a link: a HEAD (link previews, scanners) must not.
      if (request.method === "GET" && path.startsWith("/login/")) {
        return await this.login(request, url, path.slice("/login/".length), context);
      }
      const identity = await this.identify(request);
      if (method === "GET" && path === "/") return this.page(url, identity);
      if (!api && path !== "/logout") return this.notFoundPage(url);
      if (identity === null) throw new FluxError("session_required");
      if (method !== "GET") {
        const refused = checkCrossSite(request, url, identity.seed, this.options.allowedOrigins);
        if (refused !== null) {
          this.logger.warn?.(
            {
              event: "flux.portal.cross_site_refused",
              reason: refused.extensions.reason,
              method,
              path: url.pathname,
            },
            "flux-keys portal: cross-site request refused",
          );
          throw refused;
        }
      }
      const ip = this.flux.limits.clientAddress({
        remoteAddress: context.remoteAddress,
        headers: request.headers,
      });
      const actor: Actor = { type: "user", id: identity.customer.userId, ...(ip ? { ip } : {}) };
      if (path === "/logout" && method === "POST") return await this.logout(url, identity, ip ?? undefined);
      return await this.api(request, method, path.slice("/api".length), url, identity, actor);
    } catch (error) {
      if (error instanceof FluxError) {
        if (!api && path !== "/logout" && error.code === "session_required") return this.signInPage(url);
        return problem(error);
      }
      this.logger.error?.(
        {
          event: "flux.portal.failed",
          error: error instanceof Error ? error.name : typeof error,
          path: url.pathname,
        },
        "flux-keys portal: unexpected failure",
      );
      return internalProblem();
    }
  }

  // --- who is asking -------------------------------------------------------------------------

  private async identify(request: Request): Promise<Identity | null> {
    const resolve = this.options.resolveCustomer;
    if (resolve !== undefined) {
      const found = await resolve(request);
      if (found !== null && found !== undefined) {
        const customer = validCustomer(found);
        if (customer === null) {
          this.logger.warn?.(
            { event: "flux.portal.invalid_customer" },
            "flux-keys portal: resolveCustomer returned an invalid customer",
          );
        } else {
          return { customer, session: null, seed: readCookie(request, this.csrfCookie) };
        }
      }
    }
    const token = readCookie(request, this.options.cookieName);
    const session = await this.sessions.find(token);
    if (session === null) return null;
    return {
      customer: { orgId: session.orgId, userId: session.userId, role: session.role },
      session,
      seed: token,
    };
  }

  private get csrfCookie(): string {
    return `${this.options.cookieName}_csrf`;
  }

  private cookieSettings(url: URL) {
    const secure =
      this.options.secureCookies === "auto" ? url.protocol === "https:" : this.options.secureCookies;
    return { path: this.options.basePath || "/", secure };
  }

  // --- pages ---------------------------------------------------------------------------------

  private async login(request: Request, url: URL, token: string, context: PortalRequestContext) {
    const previous = readCookie(request, this.options.cookieName);
    const previousSession = await this.sessions.find(previous);
    const ip = this.flux.limits.clientAddress({
      remoteAddress: context.remoteAddress,
      headers: request.headers,
    });
    const started = await this.sessions.exchange(token, {
      sessionTtlMs: this.options.sessionTtlMs,
      previousSessionId: previousSession?.id ?? null,
      ...(ip ? { ip } : {}),
    });
    if (started === null) {
      this.logger.info?.(
        { event: "flux.portal.link_refused", path: `${this.options.basePath}/login/…` },
        "flux-keys portal: link refused",
      );
      return respond(
        410,
        messagePage(this.pageInfo(), {
          heading: "This link has expired",
          text: "Portal links work once and only for a few minutes. Go back to the app and open the portal again.",
        }),
        { "Content-Type": "text/html; charset=utf-8" },
      );
    }
    this.logger.info?.(
      { event: "flux.portal.session_started", orgId: started.session.orgId, userId: started.session.userId },
      "flux-keys portal: session started",
    );
    const settings = this.cookieSettings(url);
    return respond(303, null, { Location: `${this.options.basePath}/` }, [
      setCookie(this.options.cookieName, started.token, settings, this.options.sessionTtlMs / 1000),
    ]);
  }

  private page(url: URL, identity: Identity | null): Response {
    if (identity === null) return this.signInPage(url);
    const cookies: string[] = [];
    let seed = identity.seed;
    if (seed === undefined) {
      seed = newCsrfSeed();
      cookies.push(setCookie(this.csrfCookie, seed, this.cookieSettings(url)));
    }
    const html = portalPage(this.pageInfo(), {
      csrfToken: csrfToken(seed),
      basePath: this.options.basePath,
      canSignOut: identity.session !== null,
      returnUrl: identity.session?.returnUrl ?? null,
    });
    return respond(200, html, { "Content-Type": "text/html; charset=utf-8" }, cookies);
  }

  private signInPage(_url: URL): Response {
    return respond(
      401,
      messagePage(this.pageInfo(), {
        heading: "Please sign in",
        text: "Your portal session has ended. Go back to the app and open the portal again.",
      }),
      { "Content-Type": "text/html; charset=utf-8" },
    );
  }

  private notFoundPage(_url: URL): Response {
    return respond(
      404,
      messagePage(this.pageInfo(), { heading: "Not found", text: "There is no such page in the portal." }),
      { "Content-Type": "text/html; charset=utf-8" },
    );
  }

  private pageInfo() {
    return {
      title: this.options.title,
      brand: this.options.branding.name,
      basePath: this.options.basePath,
      supportUrl: this.options.branding.supportUrl,
    };
  }

  private asset(path: string): Response {
    const cache = { "Cache-Control": "public, max-age=300" };
    if (path === "/assets/portal.js") {
      return respond(200, PORTAL_SCRIPT, { "Content-Type": "text/javascript; charset=utf-8", ...cache });
    }
    if (path === "/assets/portal.css") {
      return respond(200, PORTAL_STYLES, { "Content-Type": "text/css; charset=utf-8", ...cache });
    }
    if (path === "/assets/theme.css") {
      const accent = this.options.branding.accentColor;
      const css = accent ? `:root{--accent:${accent};}\n` : "";
      return respond(200, css, { "Content-Type": "text/css; charset=utf-8", ...cache });
    }
    return problem(new FluxError("not_found"));
  }

  private async logout(url: URL, identity: Identity, ip: string | undefined): Promise<Response> {
    if (identity.session !== null) await this.sessions.end(identity.session, ip);
    const settings = this.cookieSettings(url);
    return json(200, { signedOut: true, returnUrl: identity.session?.returnUrl ?? null }, [
      clearCookie(this.options.cookieName, settings),
    ]);
  }

  // --- JSON API ------------------------------------------------------------------------------

  private async api(
    request: Request,
    method: string,
    path: string,
    url: URL,
    identity: Identity,
    actor: Actor,
  ): Promise<Response> {
    const { customer } = identity;
    if (path === "/me" && method === "GET") return json(200, await this.me(customer, identity));
    if (path === "/keys" && method === "GET") {
      const page = await this.flux.keys.list({
        orgId: customer.orgId,
        cursor: url.searchParams.get("cursor"),
        limit: 100,
      });
      return json(200, {
        items: page.items.map((key) => this.view(key, customer)),
        nextCursor: page.nextCursor,
      });
    }
    if (path === "/keys" && method === "POST") return this.createKey(request, customer, actor);
    if (path === "/usage" && method === "GET") return json(200, await this.usage(url, customer));
    if (path === "/audit" && method === "GET") return json(200, await this.audit(url, customer));
    const match = /^\/keys\/([^/]+)(\/rotate|\/revoke)?$/.exec(path);
    if (match) {
      const key = await this.ownKey(decodePathSegment(match[1] as string), customer);
      const action = match[2];
      if (action === undefined && method === "GET") return json(200, await this.detail(key, customer));
      if (action === undefined && method === "PATCH") return this.updateKey(request, key, customer, actor);
      if (action === "/rotate" && method === "POST") return this.rotateKey(request, key, customer, actor);
      if (action === "/revoke" && method === "POST") return this.revokeKey(request, key, customer, actor);
    }
    throw new FluxError("not_found");
  }

  /** The key, if it belongs to the customer's org; otherwise exactly what an unknown id gets. */
  private async ownKey(id: string, customer: PortalCustomer): Promise<ApiKeyInfo> {
    if (id.length > 128) throw new FluxError("not_found", { detail: "No such key." });
    const key = await this.flux.keys.get(id);
    if (key.orgId !== customer.orgId) throw new FluxError("not_found", { detail: "No such key." });
    return key;
  }

  private async me(customer: PortalCustomer, identity: Identity) {
    const org = await this.flux.orgs.get(customer.orgId);
    const plan = org.planId === null ? null : await this.flux.plans.get(org.planId);
    return {
      // The operator's reason is theirs: the customer sees only that, and since when.
      org: { id: org.id, name: org.name, suspendedAt: org.suspendedAt },
      plan: plan === null ? null : { id: plan.id, name: plan.name },
      user: { id: customer.userId, role: customer.role },
      scopes: this.offeredScopes(plan?.scopes ?? []),
      /** True when the plan restricts nothing and no list was configured: scopes are typed in. */
      freeScopes: (plan?.scopes.length ?? 0) === 0 && this.options.scopes === undefined,
      can: { create: customer.role !== "viewer", manageAll: customer.role === "admin" },
      session: identity.session === null ? null : { expiresAt: identity.session.expiresAt },
    };
  }

  private offeredScopes(planScopes: readonly string[]) {
    const configured = this.options.scopes;
    if (configured === undefined) return planScopes.map((scope) => ({ scope }));
    if (planScopes.length === 0) return configured;
    return configured.filter((entry) => scopeCovers(planScopes, entry.scope));
  }

  /** Scopes outside the configured list are refused; the plan itself is enforced by core. */
  private assertOffered(scopes: readonly string[]): void {
    const configured = this.options.scopes;
    if (configured === undefined) return;
    const outside = scopes.filter((scope) => !configured.some((entry) => entry.scope === scope));
    if (outside.length > 0) {
      throw new FluxError("scope_not_allowed", {
        detail: `Not offered in this portal: ${outside.join(", ")}.`,
        extensions: { scopes: outside },
      });
    }
  }

  private canManage(key: ApiKeyInfo, customer: PortalCustomer): boolean {
    if (customer.role === "admin") return true;
    return (
      customer.role === "member" && key.createdBy.type === "user" && key.createdBy.id === customer.userId
    );
  }

  private assertCanManage(key: ApiKeyInfo, customer: PortalCustomer): void {
    if (customer.role === "viewer")
      throw new FluxError("role_denied", { detail: "Viewers cannot change keys." });
    if (!this.canManage(key, customer)) {
      throw new FluxError("role_denied", {
        detail: "Only an admin can change keys created by someone else.",
      });
    }
  }

  private view(key: ApiKeyInfo, customer: PortalCustomer) {
    const now = this.now();
    let status: Display = key.status;
    if (
      status === "active" &&
      key.expiresAt !== null &&
      key.expiresAt.getTime() - now <= this.options.expiringSoonMs
    ) {
      status = "expiring";
    }
    const mine = key.createdBy.type === "user" && key.createdBy.id === customer.userId;
    return {
      id: key.id,
      name: key.name,
      start: key.start,
      last4: key.last4,
      environment: key.environment,
      scopes: key.scopes,
      status,
      // Who created it (an operator's or a colleague's id) is for admins, or the creator.
      createdBy: customer.role === "admin" || mine ? key.createdBy : { type: key.createdBy.type },
      createdByYou: mine,
      createdAt: key.createdAt,
      lastUsedAt: key.lastUsedAt,
      expiresAt: key.expiresAt,
      revokedAt: key.revokedAt,
      sunsetAt: key.sunsetAt,
      replacedById: key.replacedById,
      canManage: key.status !== "revoked" && key.status !== "expired" && this.canManage(key, customer),
    };
  }

  private async detail(key: ApiKeyInfo, customer: PortalCustomer) {
    let grace = null;
    if (key.status === "grace" && key.replacedById !== null && key.sunsetAt !== null) {
      const successor = await this.flux.keys.get(key.replacedById);
      const rotatedAt = successor.createdAt;
      const to = new Date(Math.max(this.now(), rotatedAt.getTime() + 1));
      const { series } = await this.flux.usage.query({
        keyId: key.id,
        from: rotatedAt,
        to,
        granularity: "minute",
        groupBy: ["endpoint"],
      });
      const endpoints = series.map((s) => {
        const last = [...s.points].reverse().find((point) => point.calls > 0);
        return {
          method: s.group.method ?? "",
          endpoint: s.group.endpoint ?? "",
          calls: s.totals.calls,
          errors: s.totals.errors,
          lastCallAt: last?.at ?? null,
        };
      });
      grace = {
        rotatedAt,
        sunsetAt: key.sunsetAt,
        replacedBy: { id: successor.id, start: successor.start, last4: successor.last4 },
        callsSinceRotation: endpoints.reduce((sum, e) => sum + e.calls, 0),
        errorsSinceRotation: endpoints.reduce((sum, e) => sum + e.errors, 0),
        lastUsedAt: key.lastUsedAt,
        endpoints,
        // The clients (address and user agent) that used the old key since the rotation: who and
        // from where, for admins only.
        clients:
          customer.role === "admin" ? (await this.flux.keys.graceUsage(key.id, { limit: 20 })).clients : null,
      };
    }
    // Least privilege: the scopes this key actually used, when narrower than what it holds.
    const suggestion = key.status === "revoked" ? null : await this.flux.keys.suggestScopes(key.id);
    const scopeAdvice =
      suggestion !== null && suggestion.used.length > 0 && suggestion.narrower
        ? { suggested: suggestion.suggested, unused: suggestion.unused }
        : null;
    return { key: this.view(key, customer), grace, scopeAdvice };
  }

  private async createKey(request: Request, customer: PortalCustomer, actor: Actor): Promise<Response> {
    if (customer.role === "viewer")
      throw new FluxError("role_denied", { detail: "Viewers cannot create keys." });
    const body = parseInput(createSchema, await readJson(request), "key");
    this.assertOffered(body.scopes);
    const builder = this.flux.keys
      .create()
      .forOrg(customer.orgId)
      .named(body.name)
      .withScopes(body.scopes)
      .createdBy(actor);
    if (body.expiresInDays != null) builder.expiresInDays(body.expiresInDays);
    else if (body.expiresAt != null) builder.expiresAt(new Date(body.expiresAt));
    builder.withinActiveKeyLimit(this.options.maxActiveKeys);
    const { key, secret } = await builder.issue();
    this.logger.info?.(
      { event: "flux.portal.key_created", orgId: customer.orgId, userId: customer.userId, keyId: key.id },
      "flux-keys portal: key created",
    );
    return json(201, { key: this.view(key, customer), secret });
  }

  private async updateKey(request: Request, key: ApiKeyInfo, customer: PortalCustomer, actor: Actor) {
    this.assertCanManage(key, customer);
    const body = parseInput(updateSchema, await readJson(request), "changes");
    if (body.scopes !== undefined) this.assertOffered(body.scopes);
    const updated = await this.flux.keys.update(
      key.id,
      {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.scopes !== undefined ? { scopes: body.scopes } : {}),
      },
      { actor },
    );
    this.logger.info?.(
      { event: "flux.portal.key_updated", orgId: customer.orgId, userId: customer.userId, keyId: key.id },
      "flux-keys portal: key updated",
    );
    return json(200, { key: this.view(updated, customer) });
  }

  private async rotateKey(request: Request, key: ApiKeyInfo, customer: PortalCustomer, actor: Actor) {
    this.assertCanManage(key, customer);
    const body = parseInput(rotateSchema, await readJson(request), "rotation");
    const rotated = await this.flux.keys.rotate(key.id, { gracePeriod: GRACE[body.gracePeriod], actor });
    this.logger.info?.(
      {
        event: "flux.portal.key_rotated",
        orgId: customer.orgId,
        userId: customer.userId,
        keyId: key.id,
        successorId: rotated.key.id,
      },
      "flux-keys portal: key rotated",
    );
    return json(201, {
      key: this.view(rotated.key, customer),
      previous: this.view(rotated.previous, customer),
      secret: rotated.secret,
    });
  }

  private async revokeKey(request: Request, key: ApiKeyInfo, customer: PortalCustomer, actor: Actor) {
    this.assertCanManage(key, customer);
    const body = parseInput(revokeSchema, await readJson(request), "revocation");
    const revoked = await this.flux.keys.revoke(key.id, {
      actor,
      ...(body.reason ? { reason: body.reason } : {}),
    });
    this.logger.info?.(
      { event: "flux.portal.key_revoked", orgId: customer.orgId, userId: customer.userId, keyId: key.id },
      "flux-keys portal: key revoked",
    );
    return json(200, { key: this.view(revoked, customer), revokedWith: revoked.revokedWith });
  }

  private async usage(url: URL, customer: PortalCustomer) {
    const rangeName = url.searchParams.get("range") ?? "24h";
    if (!(rangeName in RANGES)) {
      throw new FluxError("invalid_request", {
        detail: "range must be 1h, 24h, 7d or 30d.",
        extensions: { field: "range" },
      });
    }
    const range = RANGES[rangeName as keyof typeof RANGES];
    const keyParam = url.searchParams.get("keyId");
    const key = keyParam === null ? null : await this.ownKey(keyParam, customer);
    const to = new Date(this.now() + 1);
    const from = new Date(to.getTime() - range.ms);
    const scope = key === null ? { orgId: customer.orgId } : { keyId: key.id };
    const [overall, byEndpoint, byOutcome] = await Promise.all([
      this.flux.usage.query({ ...scope, from, to, granularity: range.granularity }),
      this.flux.usage.query({ ...scope, from, to, granularity: range.granularity, groupBy: ["endpoint"] }),
      this.flux.usage.query({ ...scope, from, to, granularity: range.granularity, groupBy: ["outcome"] }),
    ]);
    const series = overall.series[0];
    // Calls refused once the key was identified (throttled, out of scope, revoked…), per point.
    const refused = new Array<number>(series?.points.length ?? 0).fill(0);
    const outcomes: Record<string, number> = {};
    for (const s of byOutcome.series) {
      outcomes[s.group.outcome as string] = s.totals.calls;
      if (s.group.outcome === "allowed") continue;
      s.points.forEach((point, i) => {
        refused[i] = (refused[i] ?? 0) + point.calls;
      });
    }
    const result = {
      range: rangeName,
      granularity: range.granularity,
      from: overall.from,
      to: overall.to,
      totals: { calls: series?.totals.calls ?? 0, errors: series?.totals.errors ?? 0 },
      /** Calls by outcome (`allowed`, `rate_limited`, …), most first; outcomes without calls left out. */
      outcomes,
      refused: refused.reduce((sum, n) => sum + n, 0),
      points: (series?.points ?? []).map((p, i) => ({
        at: p.at,
        calls: p.calls,
        errors: p.errors,
        refused: refused[i] ?? 0,
      })),
      endpoints: byEndpoint.series.slice(0, 10).map((s) => ({
        method: s.group.method ?? "",
        endpoint: s.group.endpoint ?? "",
        calls: s.totals.calls,
        errors: s.totals.errors,
      })),
      keys: [] as Array<{
        keyId: string;
        name: string | null;
        start: string | null;
        last4: string | null;
        calls: number;
        errors: number;
      }>,
    };
    if (key === null) {
      const top = await this.flux.usage.top({ orgId: customer.orgId, by: "key", from, to, limit: 10 });
      const known = new Map<string, ApiKeyInfo>();
      for (const entry of top) {
        const found = await this.flux.keys.get(entry.keyId as string).catch(() => null);
        if (found !== null && found.orgId === customer.orgId) known.set(found.id, found);
      }
      result.keys = top.map((entry) => {
        const found = known.get(entry.keyId as string);
        return {
          keyId: entry.keyId as string,
          name: found?.name ?? null,
          start: found?.start ?? null,
          last4: found?.last4 ?? null,
          calls: entry.calls,
          errors: entry.errors,
        };
      });
    }
    return result;
  }

  private async audit(url: URL, customer: PortalCustomer) {
    const page = await this.flux.audit.list({
      orgId: customer.orgId,
      cursor: url.searchParams.get("cursor"),
      limit: 50,
    });
    const admin = customer.role === "admin";
    return {
      items: page.items.map((event) => {
        const you = event.actor.type === "user" && event.actor.id === customer.userId;
        return {
          id: event.id,
          at: event.at,
          action: event.action,
          // Members and viewers see what happened, not who (ids) from where (addresses).
          actor: admin ? { ...event.actor, you } : { type: event.actor.type, you },
          keyId: event.keyId,
          details: admin ? event.details : whatHappened(event.details),
        };
      }),
      nextCursor: page.nextCursor,
    };
  }
}

/**
 * The audit details a member or viewer sees: what changed. Anything else (the role someone signed
 * in with, where a leaked key was found, fields added later) is for admins.
 */
const WHAT_HAPPENED = new Set([
  "name",
  "scopes",
  "from",
  "to",
  "changed",
  "environment",
  "expiresAt",
  "reason",
  "replacedBy",
  "rotatedFrom",
  "sunsetAt",
  "gracePeriodMs",
  "granted",
  "planId",
  "action",
  "reporter",
]);

function whatHappened(details: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details).filter(([name]) => WHAT_HAPPENED.has(name)));
}

/** A malformed escape (`%E0%A4%A`) cannot name a key: it is an unknown id, not a failure. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return "";
  }
}

function validCustomer(value: unknown): PortalCustomer | null {
  if (typeof value !== "object" || value === null) return null;
  const { orgId, userId, role } = value as Record<string, unknown>;
  if (typeof orgId !== "string" || orgId.length === 0 || orgId.length > 128) return null;
  if (typeof userId !== "string" || userId.length === 0 || userId.length > 200) return null;
  if (!(PORTAL_ROLES as readonly unknown[]).includes(role)) return null;
  return { orgId, userId, role: role as PortalCustomer["role"] };
}
