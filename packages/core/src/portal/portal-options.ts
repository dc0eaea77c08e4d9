/** The options of the portal handler, their defaults, and their resolution (once, at creation). */
import { type Duration, toMs } from "../duration.js";
import { FluxConfigError } from "../errors.js";

export type PortalRole = "viewer" | "member" | "admin";
export const PORTAL_ROLES: readonly PortalRole[] = ["viewer", "member", "admin"];

/** Who is using the portal: their org, their id in the host app, and what they may do. */
export interface PortalCustomer {
  orgId: string;
  userId: string;
  /** `viewer` reads; `member` also creates keys and manages the ones they created; `admin` manages all. */
  role: PortalRole;
}

/** Per-request facts only the server adapter knows. */
export interface PortalRequestContext {
  /** The socket's peer address; forwarded headers from it are believed as `createFlux({ trustProxy })` says. */
  remoteAddress?: string | null;
}

export interface PortalScopeOption {
  scope: string;
  /** Shown next to the checkbox. */
  description?: string;
}

export interface PortalOptions {
  /** Where the portal is mounted: every page and API path starts with it. @default '/portal' */
  basePath?: string;
  /**
   * Absolute URL of the mounted portal (e.g. `'https://app.example.com/portal'`). When set, links
   * from `createSession()` are absolute; otherwise they are paths under `basePath`. @default none
   */
  baseUrl?: string;
  /**
   * For apps that already have sessions: who the customer is, from the request (return null when
   * nobody is signed in). Tried before the portal's own session cookie. @default none (links only)
   */
  resolveCustomer?: (request: Request) => PortalCustomer | null | Promise<PortalCustomer | null>;
  /**
   * `Secure` on cookies; `'auto'`: when the request URL is https (behind a trusted proxy, as its
   * `X-Forwarded-Proto` / `Forwarded` says). @default 'auto'
   */
  secureCookies?: boolean | "auto";
  /** Name of the session cookie (the CSRF cookie is `<name>_csrf`). @default 'flux_portal' */
  cookieName?: string;
  /** How long a session from a link lasts (absolute, not sliding). @default '8h' */
  sessionTtl?: Duration;
  /** Page title. @default 'API keys' */
  title?: string;
  /** Branding: the product name in the header, an accent colour (`#rrggbb`), a support link. @default none */
  branding?: { name?: string; accentColor?: string; supportUrl?: string };
  /**
   * Scopes offered in the create and edit forms, with descriptions. Only those the org's plan also
   * allows are offered. @default the plan's scopes
   */
  scopes?: ReadonlyArray<string | PortalScopeOption>;
  /** An active key expiring within this is shown as "expiring soon". @default '7d' */
  expiringSoon?: Duration;
  /** Other origins allowed to POST (besides the request's own). @default none */
  allowedOrigins?: readonly string[];
  /**
   * Active keys an org may hold when creating one through the portal (keys neither revoked,
   * expired nor replaced by a rotation; keys issued elsewhere count too). Past it, creating answers
   * 409 `key_limit_reached`; rotating (which replaces a key) still works. 1 to 100000.
   * @default 100
   */
  maxActiveKeys?: number;
}

export interface ResolvedPortalOptions {
  basePath: string;
  baseUrl: string | undefined;
  resolveCustomer: PortalOptions["resolveCustomer"];
  secureCookies: boolean | "auto";
  cookieName: string;
  sessionTtlMs: number;
  title: string;
  branding: { name: string | undefined; accentColor: string | undefined; supportUrl: string | undefined };
  scopes: PortalScopeOption[] | undefined;
  expiringSoonMs: number;
  allowedOrigins: ReadonlySet<string>;
  maxActiveKeys: number;
}

const KNOWN = new Set([
  "basePath",
  "baseUrl",
  "resolveCustomer",
  "secureCookies",
  "cookieName",
  "sessionTtl",
  "title",
  "branding",
  "scopes",
  "expiringSoon",
  "allowedOrigins",
  "maxActiveKeys",
]);

const MAX_SESSION_MS = 7 * 86_400_000;

export function resolvePortalOptions(options: PortalOptions = {}): ResolvedPortalOptions {
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw invalid(`Unknown portal option '${name}'.`, "unknown_option");
  }
  const basePath = normalizeBasePath(options.basePath ?? "/portal");
  let baseUrl: string | undefined;
  if (options.baseUrl !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(options.baseUrl);
    } catch {
      throw invalid("baseUrl must be an absolute http(s) URL.");
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
      throw invalid("baseUrl must be an absolute http(s) URL.");
    }
    baseUrl = parsed.href.replace(/\/+$/, "");
  }
  if (options.resolveCustomer !== undefined && typeof options.resolveCustomer !== "function") {
    throw invalid("resolveCustomer must be a function.");
  }
  const secureCookies = options.secureCookies ?? "auto";
  if (secureCookies !== "auto" && typeof secureCookies !== "boolean") {
    throw invalid("secureCookies must be true, false or 'auto'.");
  }
  const cookieName = options.cookieName ?? "flux_portal";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cookieName)) throw invalid("cookieName: letters, digits, _ and -.");
  const sessionTtlMs = duration(options.sessionTtl ?? "8h", "sessionTtl");
  if (sessionTtlMs < 60_000 || sessionTtlMs > MAX_SESSION_MS) {
    throw invalid("sessionTtl must be between 1 minute and 7 days.");
  }
  const accentColor = options.branding?.accentColor;
  if (accentColor !== undefined && !/^#[0-9a-fA-F]{6}$/.test(accentColor)) {
    throw invalid("branding.accentColor must look like '#1f6feb'.");
  }
  const supportUrl = options.branding?.supportUrl;
  if (supportUrl !== undefined && !/^(https?:\/\/|\/(?!\/))/.test(supportUrl)) {
    throw invalid("branding.supportUrl must be an http(s) URL or a path.");
  }
  const allowedOrigins = new Set<string>();
  for (const origin of options.allowedOrigins ?? []) {
    try {
      allowedOrigins.add(new URL(origin).origin);
    } catch {
      throw invalid(`allowedOrigins: '${origin}' is not an origin.`);
    }
  }
  const maxActiveKeys = options.maxActiveKeys ?? 100;
  if (!Number.isInteger(maxActiveKeys) || maxActiveKeys < 1 || maxActiveKeys > 100_000) {
    throw invalid("maxActiveKeys must be an integer from 1 to 100000.");
  }
  return {
    basePath,
    baseUrl,
    resolveCustomer: options.resolveCustomer,
    secureCookies,
    cookieName,
    sessionTtlMs,
    title: options.title ?? "API keys",
    branding: { name: options.branding?.name, accentColor, supportUrl },
    scopes: options.scopes?.map((entry) => (typeof entry === "string" ? { scope: entry } : { ...entry })),
    expiringSoonMs: duration(options.expiringSoon ?? "7d", "expiringSoon"),
    allowedOrigins,
    maxActiveKeys,
  };
}

/** `'/portal/'` -> `'/portal'`; `'/'` -> `''` (mounted at the root). */
export function normalizeBasePath(path: string): string {
  if (typeof path !== "string" || !(path === "" || path.startsWith("/")) || /[?#\s]/.test(path)) {
    throw invalid("basePath must be a path such as '/portal'.");
  }
  return path.replace(/\/+$/, "");
}

function duration(value: Duration, name: string): number {
  try {
    return toMs(value, name);
  } catch {
    throw invalid(`${name} must be a duration such as '8h'.`);
  }
}

function invalid(message: string, code: "invalid_option" | "unknown_option" = "invalid_option") {
  return new FluxConfigError(code, message);
}
