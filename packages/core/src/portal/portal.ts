/** `flux.portal`: the customer self-service portal of one Flux instance. */
import type { Flux } from "../flux.js";
import { createPortalHandler, linkUrl, type PortalHandler } from "./handler.js";
import { normalizeBasePath, type PortalOptions } from "./portal-options.js";
import { type CreateSessionInput, type PortalSessionLink, PortalSessions } from "./sessions.js";

export interface CreatePortalSessionInput extends CreateSessionInput {
  /** The portal's mount path, for the link. @default '/portal' */
  basePath?: string;
  /** Absolute URL of the mounted portal; when set the link is absolute. @default none */
  baseUrl?: string;
}

export class Portal {
  private readonly sessions: PortalSessions;

  constructor(private readonly flux: Flux) {
    this.sessions = new PortalSessions(flux);
  }

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
    const { token, expiresAt } = await this.sessions.createLink(session);
    return { url: linkUrl(token, path, baseUrl?.replace(/\/+$/, "")), expiresAt };
  }
}
