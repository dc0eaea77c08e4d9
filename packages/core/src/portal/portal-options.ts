/**
 * The options of the portal handler: one schema holds their names, checks and defaults, resolved
 * once when the handler is created (the portal itself is @flux-keys/portal).
 */
import { z } from "zod";
import { FluxConfigError } from "../errors.js";
import { choose, duration, instance, integer, parseOptions, section } from "../options-schema.js";

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

const MAX_SESSION_MS = 7 * 86_400_000;
const ACCENT = /^#[0-9a-fA-F]{6}$/;
const SUPPORT_URL = /^(https?:\/\/|\/(?!\/))/;

/** An absolute http(s) URL, without its trailing slashes. */
const httpUrl = z.string({ error: "must be an absolute http(s) URL." }).transform((value, ctx) => {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    ctx.issues.push({ code: "custom", message: "must be an absolute http(s) URL.", input: value });
    return z.NEVER;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    ctx.issues.push({ code: "custom", message: "must be an absolute http(s) URL.", input: value });
    return z.NEVER;
  }
  return parsed.href.replace(/\/+$/, "");
});

/** An origin (`https://app.example.com`), from any URL of it. */
const origin = z.string({ error: "must be an origin." }).transform((value, ctx) => {
  try {
    return new URL(value).origin;
  } catch {
    ctx.issues.push({ code: "custom", message: `'${value}' is not an origin.`, input: value });
    return z.NEVER;
  }
});

const portalSection = section({
  /** Where the portal is mounted: every page and API path starts with it. @default '/portal' */
  basePath: z
    .string({ error: "must be a path such as '/portal'." })
    .refine(isBasePath, { error: "must be a path such as '/portal'." })
    .prefault("/portal"),
  /**
   * Absolute URL of the mounted portal (e.g. `'https://app.example.com/portal'`). When set, links
   * from `createSession()` are absolute; otherwise they are paths under `basePath`. @default none
   */
  baseUrl: httpUrl.optional(),
  /**
   * For apps that already have sessions: who the customer is, from the request (return null when
   * nobody is signed in). Tried before the portal's own session cookie. @default none (links only)
   */
  resolveCustomer: instance<(request: Request) => PortalCustomer | null | Promise<PortalCustomer | null>>(
    (value) => typeof value === "function",
    "must be a function.",
  ).optional(),
  /**
   * `Secure` on cookies; `'auto'`: when the request URL is https (behind a trusted proxy, as its
   * `X-Forwarded-Proto` / `Forwarded` says). @default 'auto'
   */
  secureCookies: z
    .union([z.boolean(), z.literal("auto")], { error: "must be true, false or 'auto'." })
    .prefault("auto"),
  /** Name of the session cookie (the CSRF cookie is `<name>_csrf`). @default 'flux_portal' */
  cookieName: z
    .string({ error: "letters, digits, _ and -." })
    .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: "letters, digits, _ and -." })
    .prefault("flux_portal"),
  /** How long a session from a link lasts (absolute, not sliding), 1 minute to 7 days. @default '8h' */
  sessionTtl: duration("8h", { ms: 60_000, error: "must be between 1 minute and 7 days." })
    .refine((ms) => ms <= MAX_SESSION_MS, { error: "must be between 1 minute and 7 days." })
    .prefault("8h"),
  /** Page title. @default 'API keys' */
  title: z.string({ error: "must be a string." }).prefault("API keys"),
  /** Branding: the product name in the header, an accent colour (`#rrggbb`), a support link. @default none */
  branding: section({
    name: z.string({ error: "must be a string." }).optional(),
    accentColor: z
      .string({ error: "must look like '#1f6feb'." })
      .regex(ACCENT, { error: "must look like '#1f6feb'." })
      .optional(),
    supportUrl: z
      .string({ error: "must be an http(s) URL or a path." })
      .regex(SUPPORT_URL, { error: "must be an http(s) URL or a path." })
      .optional(),
  }).prefault({}),
  /**
   * Scopes offered in the create and edit forms, with descriptions. Only those the org's plan also
   * allows are offered. @default the plan's scopes
   */
  scopes: z
    .array(
      choose(
        (value) => typeof value === "string",
        z.string(),
        section({ scope: z.string({ error: "must be a string." }), description: z.string().optional() }),
      ),
      { error: "must be a list of scopes or { scope, description }." },
    )
    .readonly()
    .optional(),
  /** An active key expiring within this is shown as "expiring soon". @default '7d' */
  expiringSoon: duration("7d").prefault("7d"),
  /** Other origins allowed to POST (besides the request's own). @default none */
  allowedOrigins: z.array(origin, { error: "must be a list of origins." }).readonly().prefault([]),
  /**
   * Active keys an org may hold when creating one through the portal (keys neither revoked,
   * expired nor replaced by a rotation; keys issued elsewhere count too). Past it, creating answers
   * 409 `key_limit_reached`; rotating (which replaces a key) still works. 1 to 100000.
   * @default 100
   */
  maxActiveKeys: integer("must be an integer from 1 to 100000.", 1, 100_000).prefault(100),
});

export type PortalOptions = z.input<typeof portalSection>;

const portalOptionsSchema = portalSection.prefault({}).transform((options) => ({
  basePath: options.basePath.replace(/\/+$/, ""),
  baseUrl: options.baseUrl,
  resolveCustomer: options.resolveCustomer,
  secureCookies: options.secureCookies,
  cookieName: options.cookieName,
  sessionTtlMs: options.sessionTtl,
  title: options.title,
  branding: {
    name: options.branding.name,
    accentColor: options.branding.accentColor,
    supportUrl: options.branding.supportUrl,
  },
  scopes: options.scopes?.map(
    (entry): PortalScopeOption => (typeof entry === "string" ? { scope: entry } : { ...entry }),
  ),
  expiringSoonMs: options.expiringSoon,
  allowedOrigins: new Set(options.allowedOrigins) as ReadonlySet<string>,
  maxActiveKeys: options.maxActiveKeys,
}));

export type ResolvedPortalOptions = z.output<typeof portalOptionsSchema>;

/** The portal's options checked and resolved; a FluxConfigError names the first problem. */
export function resolvePortalOptions(options: PortalOptions = {}): ResolvedPortalOptions {
  return parseOptions(portalOptionsSchema, options, [], "the portal");
}

function isBasePath(path: string): boolean {
  return path === "" || (path.startsWith("/") && !/[?#\s]/.test(path));
}

/** `'/portal/'` -> `'/portal'`; `'/'` -> `''` (mounted at the root). */
export function normalizeBasePath(path: string): string {
  if (typeof path !== "string" || !isBasePath(path)) {
    throw new FluxConfigError("invalid_option", "basePath must be a path such as '/portal'.");
  }
  return path.replace(/\/+$/, "");
}
