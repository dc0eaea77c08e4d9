/**
 * Portal links and sessions. Tokens are 32 random bytes; only their digest (SHA-256, or
 * HMAC-SHA-256 with the pepper) is stored, so a database read gives nobody a working link or
 * cookie. A link is spent by one conditional update: of two concurrent exchanges one wins.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { z } from "zod";
import { writeAudit } from "../audit.js";
import { guard } from "../database.js";
import { type Duration, toMs } from "../duration.js";
import { FluxError } from "../errors.js";
import type { Flux } from "../flux.js";
import { identifier, parseInput } from "../validation.js";
import { PORTAL_ROLES, type PortalCustomer, type PortalRole } from "./portal-options.js";

/** The longest a link may live. */
export const MAX_LINK_TTL_MS = 15 * 60_000;
const DEFAULT_LINK_TTL = "5m";
const LINK_PREFIX = "fpl_";
const SESSION_PREFIX = "fps_";

export interface CreateSessionInput {
  orgId: string;
  userId: string;
  role: PortalRole;
  /** Where "Back to app" and sign-out lead: an http(s) URL or a path. @default none */
  returnUrl?: string;
  /** How long the link can be opened (not how long the session lasts). At most '15m'. @default '5m' */
  ttl?: Duration;
}

export interface PortalSessionLink {
  /** Open it (redirect the browser to it) once, before `expiresAt`. */
  url: string;
  expiresAt: Date;
}

export interface PortalSessionRecord extends PortalCustomer {
  /** Digest of the cookie's token: the row id. Never logged. */
  id: string;
  returnUrl: string | null;
  expiresAt: Date;
}

const createSchema = z
  .object({
    orgId: identifier,
    userId: z.string().min(1).max(200),
    role: z.enum(PORTAL_ROLES as [PortalRole, ...PortalRole[]]),
    returnUrl: z
      .string()
      .max(2000)
      .regex(/^(https?:\/\/|\/(?!\/))/, "an http(s) URL or a path starting with one /")
      .optional(),
    ttl: z.union([z.number(), z.string()]).optional(),
  })
  .strict();

export class PortalSessions {
  constructor(private readonly flux: Flux) {}

  private now(): number {
    return this.flux.internals.options.clock();
  }

  digest(token: string): string {
    const pepper = this.flux.internals.options.pepper;
    return (pepper === undefined ? createHash("sha256") : createHmac("sha256", pepper))
      .update(`portal:${token}`)
      .digest("hex");
  }

  /** Stores a single-use link and returns its token (the caller builds the URL). */
  async createLink(input: CreateSessionInput): Promise<{ token: string; expiresAt: Date }> {
    const parsed = parseInput(createSchema, input, "session");
    const ttlMs =
      parsed.ttl === undefined ? toMs(DEFAULT_LINK_TTL) : toMs(parsed.ttl as Duration, "session.ttl");
    if (ttlMs <= 0 || ttlMs > MAX_LINK_TTL_MS) {
      throw new FluxError("invalid_request", {
        detail: "session.ttl must be more than 0 and at most 15 minutes.",
        extensions: { field: "session.ttl" },
      });
    }
    const prisma = this.flux.internals.database.prisma;
    const org = await guard(() =>
      prisma.org.findUnique({ where: { id: parsed.orgId }, select: { id: true } }),
    );
    if (org === null) throw new FluxError("not_found", { detail: "No such org." });
    const token = LINK_PREFIX + randomBytes(32).toString("base64url");
    const now = this.now();
    const expiresAt = new Date(now + ttlMs);
    await guard(async () => {
      await prisma.portalLink.create({
        data: {
          id: this.digest(token),
          orgId: parsed.orgId,
          userId: parsed.userId,
          role: parsed.role,
          returnUrl: parsed.returnUrl ?? null,
          expiresAt,
          createdAt: new Date(now),
        },
      });
      // Housekeeping, cheap on the expires_at index: links and sessions over a day past their end.
      const cutoff = new Date(now - 86_400_000);
      await prisma.portalLink.deleteMany({ where: { expiresAt: { lt: cutoff } } });
      await prisma.portalSession.deleteMany({ where: { expiresAt: { lt: cutoff } } });
    });
    return { token, expiresAt };
  }

  /**
   * Spends a link and starts a session. Returns null when the link is unknown, expired or already
   * used (the three are not told apart). Ends `previousSessionId`, so the session id changes.
   */
  async exchange(
    linkToken: string,
    options: { sessionTtlMs: number; previousSessionId?: string | null; ip?: string },
  ): Promise<{ token: string; session: PortalSessionRecord } | null> {
    if (!/^fpl_[A-Za-z0-9_-]{43}$/.test(linkToken)) return null;
    const prisma = this.flux.internals.database.prisma;
    const now = new Date(this.now());
    const linkId = this.digest(linkToken);
    const token = SESSION_PREFIX + randomBytes(32).toString("base64url");
    const sessionId = this.digest(token);
    return guard(() =>
      prisma.$transaction(async (tx) => {
        const { count } = await tx.portalLink.updateMany({
          where: { id: linkId, usedAt: null, expiresAt: { gt: now } },
          data: { usedAt: now },
        });
        if (count !== 1) return null;
        const link = await tx.portalLink.findUniqueOrThrow({ where: { id: linkId } });
        if (options.previousSessionId) {
          await tx.portalSession.deleteMany({ where: { id: options.previousSessionId } });
        }
        const row = await tx.portalSession.create({
          data: {
            id: sessionId,
            orgId: link.orgId,
            userId: link.userId,
            role: link.role,
            returnUrl: link.returnUrl,
            expiresAt: new Date(now.getTime() + options.sessionTtlMs),
            createdAt: now,
          },
        });
        await writeAudit(tx, {
          action: "portal.session_started",
          actor: { type: "user", id: link.userId, ...(options.ip ? { ip: options.ip } : {}) },
          orgId: link.orgId,
          details: { role: link.role },
          at: now,
        });
        return { token, session: toRecord(row) };
      }),
    );
  }

  /** The live session a cookie token names, or null. */
  async find(token: string | undefined): Promise<PortalSessionRecord | null> {
    if (token === undefined || !/^fps_[A-Za-z0-9_-]{43}$/.test(token)) return null;
    const prisma = this.flux.internals.database.prisma;
    const row = await guard(() => prisma.portalSession.findUnique({ where: { id: this.digest(token) } }));
    if (row === null || row.expiresAt.getTime() <= this.now()) return null;
    if (!(PORTAL_ROLES as readonly string[]).includes(row.role)) return null;
    return toRecord(row);
  }

  /** Ends a session server-side: its cookie stops working everywhere at once. */
  async end(session: PortalSessionRecord, ip: string | undefined): Promise<void> {
    const prisma = this.flux.internals.database.prisma;
    await guard(() =>
      prisma.$transaction(async (tx) => {
        const { count } = await tx.portalSession.deleteMany({ where: { id: session.id } });
        if (count === 0) return;
        await writeAudit(tx, {
          action: "portal.session_ended",
          actor: { type: "user", id: session.userId, ...(ip ? { ip } : {}) },
          orgId: session.orgId,
          at: new Date(this.now()),
        });
      }),
    );
  }
}

function toRecord(row: {
  id: string;
  orgId: string;
  userId: string;
  role: string;
  returnUrl: string | null;
  expiresAt: Date;
}): PortalSessionRecord {
  return {
    id: row.id,
    orgId: row.orgId,
    userId: row.userId,
    role: row.role as PortalRole,
    returnUrl: row.returnUrl,
    expiresAt: row.expiresAt,
  };
}
