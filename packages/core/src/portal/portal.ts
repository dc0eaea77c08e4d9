/**
 * `flux.portal`: the customer self-service portal of one Flux instance. Sessions are core's (the
 * host backend and the CLI create links; the tables are core's); the UI is `@flux-keys/portal`,
 * an optional peer dependency loaded on the first request, so core ships no UI.
 */
import { FluxConfigError } from "../errors.js";
import type { Flux } from "../flux.js";
import {
  normalizeBasePath,
  type PortalOptions,
  type PortalRequestContext,
  type ResolvedPortalOptions,
  resolvePortalOptions,
} from "./portal-options.js";
import { type PortalServices, portalServices } from "./services.js";
import type { CreateSessionInput, PortalSessionLink } from "./sessions.js";

export interface CreatePortalSessionInput extends CreateSessionInput {
  /** The portal's mount path, for the link. @default '/portal' */
  basePath?: string;
  /** Absolute URL of the mounted portal; when set the link is absolute. @default none */
  baseUrl?: string;
}

export interface PortalHandler {
  (request: Request, context?: PortalRequestContext): Promise<Response>;
  /** The resolved mount path ('' at the root). */
  readonly basePath: string;
  /** A single-use sign-in link for this portal (see `flux.portal.createSession`). */
  createSession(input: CreateSessionInput): Promise<PortalSessionLink>;
}

/** Builds the URL of a link: absolute under `baseUrl`, else a path under `basePath`. */
export function linkUrl(token: string, basePath: string, baseUrl: string | undefined): string {
  return `${baseUrl ?? basePath}/login/${token}`;
}

/** What core needs of `@flux-keys/portal` (typed here: core does not depend on it). */
interface PortalModule {
  createPortalHandler(services: PortalServices, options?: PortalOptions): PortalHandler;
}

// A specifier in a variable: bundlers and TypeScript leave the optional package alone.
const PORTAL_PACKAGE = "@flux-keys/portal";
let portalModule: Promise<PortalModule> | undefined;

function loadPortal(): Promise<PortalModule> {
  portalModule ??= (import(PORTAL_PACKAGE) as Promise<PortalModule>).catch((error: unknown) => {
    portalModule = undefined;
    const missing =
      error instanceof Error && /Cannot find (package|module)|ERR_MODULE_NOT_FOUND/.test(String(error));
    if (!missing) throw error;
    throw new FluxConfigError(
      "missing_dependency",
      "flux.portal.handler() needs the @flux-keys/portal package: install it next to @flux-keys/core.",
    );
  });
  return portalModule;
}

/**
 * The portal as `(request: Request, context?) => Promise<Response>`: options are checked now
 * (a mistake throws FluxConfigError at once), `@flux-keys/portal` is loaded on the first request.
 */
export function createPortalHandler(flux: Flux, options: PortalOptions = {}): PortalHandler {
  const resolved = resolvePortalOptions(options);
  const services = portalServices(flux);
  let app: Promise<PortalHandler> | undefined;
  const handler = async (request: Request, context?: PortalRequestContext) => {
    app ??= loadPortal().then(
      (portal) => portal.createPortalHandler(services, options),
      (error: unknown) => {
        app = undefined;
        throw error;
      },
    );
    return (await app)(request, context);
  };
  return asPortalHandler(handler, resolved, services);
}

/** `handler` as the PortalHandler of these options: its `basePath` and its own `createSession()`. */
export function asPortalHandler(
  handler: (request: Request, context?: PortalRequestContext) => Promise<Response>,
  resolved: ResolvedPortalOptions,
  services: Pick<PortalServices, "sessions">,
): PortalHandler {
  Object.defineProperty(handler, "basePath", { value: resolved.basePath, enumerable: true });
  Object.defineProperty(handler, "createSession", {
    value: async (input: CreateSessionInput): Promise<PortalSessionLink> => {
      const { token, expiresAt } = await services.sessions.createLink(input);
      return { url: linkUrl(token, resolved.basePath, resolved.baseUrl), expiresAt };
    },
    enumerable: true,
  });
  return handler as PortalHandler;
}

export class Portal {
  constructor(private readonly flux: Flux) {}

  /** The portal as `(request: Request, context?) => Promise<Response>`, mounted at `options.basePath`. */
  handler(options?: PortalOptions): PortalHandler {
    return createPortalHandler(this.flux, options);
  }

  /**
   * A signed-in link for one customer user, like a billing-portal session: open it once within
   * `ttl` (at most 15 minutes) and it becomes a session cookie. Only the token's digest is stored.
   */
  async createSession(input: CreatePortalSessionInput): Promise<PortalSessionLink> {
    const { basePath, baseUrl, ...session } = input;
    const path = normalizeBasePath(basePath ?? "/portal");
    const { token, expiresAt } = await portalServices(this.flux).sessions.createLink(session);
    return { url: linkUrl(token, path, baseUrl?.replace(/\/+$/, "")), expiresAt };
  }
}
