/** The audit trail: one row per lifecycle change, written in the same transaction as the change. */
import type { PrismaClient } from "./database.js";
import { guard } from "./database.js";
import { FluxError } from "./errors.js";
import type { Prisma } from "./generated/prisma/client.js";
import type { Actor, AuditEvent, Page } from "./types.js";

type Tx = Pick<PrismaClient, "auditEvent">;

export interface AuditEntry {
  action: string;
  actor: Actor;
  orgId?: string | null;
  keyId?: string | null;
  details?: Record<string, unknown>;
  at: Date;
}

export function writeAudit(tx: Tx, entry: AuditEntry) {
  return tx.auditEvent.create({
    data: {
      at: entry.at,
      action: entry.action,
      actorType: entry.actor.type,
      actorId: entry.actor.id ?? null,
      ip: entry.actor.ip ?? null,
      orgId: entry.orgId ?? null,
      keyId: entry.keyId ?? null,
      details: (entry.details ?? {}) as Prisma.InputJsonValue,
    },
  });
}

export interface AuditQuery {
  orgId?: string;
  keyId?: string;
  from?: Date;
  to?: Date;
  cursor?: string | null;
  /** @default 50 (at most 500) */
  limit?: number;
}

export class AuditLog {
  constructor(private readonly prisma: PrismaClient) {}

  /** Newest first. */
  async list(query: AuditQuery = {}): Promise<Page<AuditEvent>> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
    let before: bigint | undefined;
    if (query.cursor) {
      // Ids are PostgreSQL bigints: 19 digits past 2^63 - 1 would reach the database as an error.
      if (!/^\d{1,19}$/.test(query.cursor) || BigInt(query.cursor) > 9_223_372_036_854_775_807n) {
        throw new FluxError("invalid_request", { detail: "cursor is not valid." });
      }
      before = BigInt(query.cursor);
    }
    const rows = await guard(() =>
      this.prisma.auditEvent.findMany({
        where: {
          ...(query.orgId !== undefined ? { orgId: query.orgId } : {}),
          ...(query.keyId !== undefined ? { keyId: query.keyId } : {}),
          ...(query.from || query.to
            ? { at: { ...(query.from ? { gte: query.from } : {}), ...(query.to ? { lt: query.to } : {}) } }
            : {}),
          ...(before !== undefined ? { id: { lt: before } } : {}),
        },
        orderBy: { id: "desc" },
        take: limit + 1,
      }),
    );
    const items = rows.slice(0, limit).map(
      (row): AuditEvent => ({
        id: row.id.toString(),
        at: row.at,
        orgId: row.orgId,
        keyId: row.keyId,
        action: row.action,
        actor: {
          type: row.actorType as Actor["type"],
          ...(row.actorId !== null ? { id: row.actorId } : {}),
          ...(row.ip !== null ? { ip: row.ip } : {}),
        },
        details: (row.details ?? {}) as Record<string, unknown>,
      }),
    );
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? last.id : null };
  }
}
