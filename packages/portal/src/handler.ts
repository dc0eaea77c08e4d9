/**
 * The portal as one function: a Web `Request` in, a `Response` out, routed by hono. Pages, assets
 * and the JSON API the pages use all live under `basePath`; an adapter only converts its request
 * and response. Everything it knows of the Flux instance comes through `PortalServices`.
 */
import {
  asPortalHandler,
  FluxError,
  PORTAL_ROLES,
  type PortalCustomer,
  type PortalHandler,
  type PortalOptions,
  type PortalRequestContext,
  type PortalServices,
  type ResolvedPortalOptions,
  resolvePortalOptions,
} from "@flux-keys/core";
import { type Context, Hono, type Next } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { type Identity, PortalApi } from "./api.js";
import { PORTAL_SCRIPT, PORTAL_STYLES } from "./generated/client-assets.js";
import {
  checkCrossSite,
  clientFacingUrl,
  csrfToken,
  INTERNAL_PROBLEM,
  newCsrfSeed,
  PROBLEM_JSON,
  portalSecureHeaders,
  problemBody,
} from "./http.js";
import { messagePage, type PageInfo, portalPage } from "./page.js";

interface PortalEnv {
  Bindings: { context: PortalRequestContext };
  Variables: {
    /** The URL as the browser sees it (scheme and host from a trusted proxy). */
    url: URL;
    /** The path under basePath, starting with '/'. */
    path: string;
    identity: Identity | null;
  };
}

type PortalContext = Context<PortalEnv>;

const HTML = { "Content-Type": "text/html; charset=utf-8" };
const JSON_TYPE = { "Content-Type": "application/json; charset=utf-8" };
const ASSET_CACHE = { "Cache-Control": "public, max-age=300" };

/** The portal for the Flux instance behind `services` (core's `portalServices(flux)`). */
export function createPortalHandler(services: PortalServices, options: PortalOptions = {}): PortalHandler {
  const resolved = resolvePortalOptions(options);
  const app = portalApp(services, resolved);
  return asPortalHandler(
    (request: Request, context?: PortalRequestContext) =>
      Promise.resolve(app.fetch(request, { context: context ?? {} })),
    resolved,
    services,
  );
}

function portalApp(services: PortalServices, options: ResolvedPortalOptions): Hono<PortalEnv> {
  const base = options.basePath;
  const at = (path: string) => `${base}${path}`;
  const csrfCookie = `${options.cookieName}_csrf`;
  const api = new PortalApi(services, options);
  const info: PageInfo = {
    title: options.title,
    brand: options.branding.name,
    basePath: base,
    supportUrl: options.branding.supportUrl,
  };
  const { logger } = services;

  const cookieOptions = (c: PortalContext) => ({
    path: base || "/",
    httpOnly: true,
    sameSite: "Lax" as const,
    secure: options.secureCookies === "auto" ? c.var.url.protocol === "https:" : options.secureCookies,
  });
  const html = (c: PortalContext, status: number, body: string) => c.body(body, status as 200, HTML);
  const problem = (c: PortalContext, error: FluxError) =>
    c.body(problemBody(error), error.status as 400, PROBLEM_JSON);
  const notFoundPage = (c: PortalContext) =>
    html(c, 404, messagePage(info, { heading: "Not found", text: "There is no such page in the portal." }));
  const signInPage = (c: PortalContext) =>
    html(
      c,
      401,
      messagePage(info, {
        heading: "Please sign in",
        text: "Your portal session has ended. Go back to the app and open the portal again.",
      }),
    );
  const isApi = (path: string) => path.startsWith("/api/");
  const clientIp = (c: PortalContext) =>
    services.clientAddress({ remoteAddress: c.env.context.remoteAddress, headers: c.req.raw.headers });

  const app = new Hono<PortalEnv>();
  app.use(portalSecureHeaders);
  app.use(async (c, next) => {
    await next();
    if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
  });

  // The client-facing URL, and nothing outside basePath.
  app.use(async (c, next) => {
    let url: URL;
    try {
      url = clientFacingUrl(
        new URL(c.req.url),
        c.req.raw.headers,
        c.env.context.remoteAddress,
        services.trust,
      );
    } catch {
      return problem(c, new FluxError("invalid_request", { detail: "The request URL must be absolute." }));
    }
    const path =
      url.pathname === base
        ? "/"
        : url.pathname.startsWith(`${base}/`)
          ? url.pathname.slice(base.length)
          : null;
    if (path === null) return problem(c, new FluxError("not_found"));
    c.set("url", url);
    c.set("path", path);
    await next();
  });

  app.get(at("/assets/*"), (c) => {
    const path = c.var.path;
    if (path === "/assets/portal.js") {
      return c.body(PORTAL_SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8", ...ASSET_CACHE });
    }
    if (path === "/assets/portal.css") {
      return c.body(PORTAL_STYLES, 200, { "Content-Type": "text/css; charset=utf-8", ...ASSET_CACHE });
    }
    if (path === "/assets/theme.css") {
      const accent = options.branding.accentColor;
      const css = accent ? `:root{--accent:${accent};}\n` : "";
      return c.body(css, 200, { "Content-Type": "text/css; charset=utf-8", ...ASSET_CACHE });
    }
    return problem(c, new FluxError("not_found"));
  });

  // Only a real GET spends a link: a HEAD (link previews, scanners) must not.
  app.get(at("/login/*"), async (c, next) => {
    if (c.req.method !== "GET") return next();
    const token = c.var.path.slice("/login/".length);
    const previousSession = await services.sessions.find(getCookie(c, options.cookieName));
    const ip = clientIp(c);
    const started = await services.sessions.exchange(token, {
      sessionTtlMs: options.sessionTtlMs,
      previousSessionId: previousSession?.id ?? null,
      ...(ip ? { ip } : {}),
    });
    if (started === null) {
      logger.info?.(
        { event: "flux.portal.link_refused", path: `${base}/login/…` },
        "flux-keys portal: link refused",
      );
      return html(
        c,
        410,
        messagePage(info, {
          heading: "This link has expired",
          text: "Portal links work once and only for a few minutes. Go back to the app and open the portal again.",
        }),
      );
    }
    logger.info?.(
      { event: "flux.portal.session_started", orgId: started.session.orgId, userId: started.session.userId },
      "flux-keys portal: session started",
    );
    setCookie(c, options.cookieName, started.token, {
      ...cookieOptions(c),
      maxAge: Math.floor(options.sessionTtlMs / 1000),
    });
    return c.body(null, 303, { Location: `${base}/` });
  });

  // Who is asking: the host's resolveCustomer first, then the portal's own session cookie.
  app.use(async (c, next) => {
    c.set("identity", await identify(c));
    await next();
  });

  const page = (c: PortalContext) => {
    const identity = c.var.identity;
    if (identity === null) return signInPage(c);
    let seed = identity.seed;
    if (seed === undefined) {
      seed = newCsrfSeed();
      setCookie(c, csrfCookie, seed, cookieOptions(c));
    }
    const body = portalPage(info, {
      csrfToken: csrfToken(seed),
      basePath: base,
      canSignOut: identity.session !== null,
      returnUrl: identity.session?.returnUrl ?? null,
    });
    return html(c, 200, body);
  };
  app.get(at("/"), page);
  if (base !== "") app.get(base, page);

  // The API and logout: a signed-in customer, and no cross-site writes.
  const guard = async (c: PortalContext, next: Next) => {
    const { path } = c.var;
    if (!isApi(path) && path !== "/logout") return next();
    const identity = c.var.identity;
    if (identity === null) throw new FluxError("session_required");
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const refused = checkCrossSite(c.req.raw, c.var.url, identity.seed, options.allowedOrigins);
      if (refused !== null) {
        logger.warn?.(
          {
            event: "flux.portal.cross_site_refused",
            reason: refused.extensions.reason,
            method: c.req.method,
            path: c.var.url.pathname,
          },
          "flux-keys portal: cross-site request refused",
        );
        throw refused;
      }
    }
    await next();
  };
  app.use(at("/api/*"), guard);
  app.use(at("/logout"), guard);

  app.post(at("/logout"), async (c) => {
    const identity = c.var.identity as Identity;
    if (identity.session !== null) await services.sessions.end(identity.session, clientIp(c) ?? undefined);
    deleteCookie(c, options.cookieName, { ...cookieOptions(c), expires: new Date(0) });
    const body = { signedOut: true, returnUrl: identity.session?.returnUrl ?? null };
    return c.body(JSON.stringify(body), 200, JSON_TYPE);
  });

  const json = (c: PortalContext, status: number, value: unknown) =>
    c.body(JSON.stringify(value), status as 200, JSON_TYPE);
  const request = (c: PortalContext) => {
    const identity = c.var.identity as Identity;
    const ip = clientIp(c);
    return {
      identity,
      customer: identity.customer,
      actor: { type: "user" as const, id: identity.customer.userId, ...(ip ? { ip } : {}) },
      raw: c.req.raw,
      query: c.var.url.searchParams,
      keyId: keyIdOf(c.var.path),
    };
  };
  app.get(at("/api/me"), async (c) => json(c, 200, await api.me(request(c))));
  app.get(at("/api/keys"), async (c) => json(c, 200, await api.listKeys(request(c))));
  app.post(at("/api/keys"), async (c) => json(c, 201, await api.createKey(request(c))));
  app.get(at("/api/usage"), async (c) => json(c, 200, await api.usage(request(c))));
  app.get(at("/api/audit"), async (c) => json(c, 200, await api.audit(request(c))));
  app.get(at("/api/keys/:id"), async (c) => json(c, 200, await api.detail(request(c))));
  app.patch(at("/api/keys/:id"), async (c) => json(c, 200, await api.updateKey(request(c))));
  app.post(at("/api/keys/:id/rotate"), async (c) => json(c, 201, await api.rotateKey(request(c))));
  app.post(at("/api/keys/:id/revoke"), async (c) => json(c, 200, await api.revokeKey(request(c))));

  app.notFound((c) => {
    const path = c.var.path;
    if (path !== undefined && !isApi(path) && path !== "/logout") return notFoundPage(c);
    return problem(c, new FluxError("not_found"));
  });

  app.onError((error, c) => {
    if (error instanceof FluxError) return problem(c, error);
    logger.error?.(
      {
        event: "flux.portal.failed",
        error: error instanceof Error ? error.name : typeof error,
        path: c.var.url?.pathname ?? "",
      },
      "flux-keys portal: unexpected failure",
    );
    return c.body(INTERNAL_PROBLEM, 500, PROBLEM_JSON);
  });

  async function identify(c: PortalContext): Promise<Identity | null> {
    const resolve = options.resolveCustomer;
    if (resolve !== undefined) {
      const found = await resolve(c.req.raw);
      if (found !== null && found !== undefined) {
        const customer = validCustomer(found);
        if (customer === null) {
          logger.warn?.(
            { event: "flux.portal.invalid_customer" },
            "flux-keys portal: resolveCustomer returned an invalid customer",
          );
        } else {
          return { customer, session: null, seed: getCookie(c, csrfCookie) };
        }
      }
    }
    const token = getCookie(c, options.cookieName);
    const session = await services.sessions.find(token);
    if (session === null) return null;
    return {
      customer: { orgId: session.orgId, userId: session.userId, role: session.role },
      session,
      seed: token,
    };
  }

  return app;
}

/** The key id of `/api/keys/:id…`, decoded; a malformed escape names no key (an unknown id). */
function keyIdOf(path: string): string | null {
  const segment = /^\/api\/keys\/([^/]+)/.exec(path)?.[1];
  if (segment === undefined) return null;
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
