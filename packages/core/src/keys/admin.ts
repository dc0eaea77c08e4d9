/**
 * Administration of keys: issue, read, list, update, revoke (with the lineage still in grace).
 * Every change runs in one transaction with its audit and lifecycle events, then is published on
 * the invalidation bus so every instance drops what it cached.
 */
import { z } from "zod";
import { writeAudit } from "../audit.js";
import { guard } from "../database.js";
import { FluxError } from "../errors.js";
import { keyCreated, keyRevoked } from "../events/key-events.js";
import type { ApiKey as ApiKeyRow, Prisma } from "../generated/prisma/client.js";
import type { Runtime } from "../runtime.js";
import { SYSTEM_ACTOR } from "../runtime.js";
import { assertWithinPlan, normalizeScopes } from "../scopes.js";
import type { Actor, ApiKeyInfo, KeyStatus, Page, Quota, RateLimitWindow } from "../types.js";
import { displayName, metadataSchema, parseInput, quotaSchema, rateLimitsSchema } from "../validation.js";
import { assertActiveKeyRoom } from "./active-key-limit.js";
import { type KeySpec, normalizeNetworks } from "./builder.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { filterHash } from "./digest-filter.js";
import { createKeyParser, displayParts, generateKey, type KeyParser, randomId } from "./format.js";
import { keyStatus } from "./record.js";
import { type IssuedKey, jsonOrNull, keyIdOrNotFound, keyInfo, keyTransaction } from "./rows.js";

export interface RevokedKey extends ApiKeyInfo {
  /** Predecessors still in their rotation grace that this revocation ended too (oldest last). */
  revokedWith: string[];
}

export interface KeyListQuery {
  orgId: string;
  status?: KeyStatus;
  cursor?: string | null;
  /** @default 50 (at most 500) */
  limit?: number;
}

export interface KeyChanges {
  name?: string;
  scopes?: string[];
  metadata?: Record<string, unknown>;
  rateLimits?: RateLimitWindow[] | null;
  quota?: Quota | null;
  expiresAt?: Date | null;
  /** Client networks (CIDRs or addresses) the key may be used from; `[]` for anywhere. */
  allowFrom?: string[];
}

const changesSchema = z
  .object({
    name: displayName.optional(),
    scopes: z.array(z.string()).optional(),
    metadata: metadataSchema.optional(),
    rateLimits: rateLimitsSchema.nullable().optional(),
    quota: quotaSchema.nullable().optional(),
    expiresAt: z.date().nullable().optional(),
    allowFrom: z.array(z.string()).optional(),
  })
  .strict();

export class KeyAdmin {
  private readonly parse: KeyParser;

  constructor(
    private readonly rt: Runtime,
    private readonly digest: (secret: string) => string,
  ) {
    this.parse = createKeyParser(rt.options.keyPrefix);
  }

  /**
   * The key a presented secret belongs to, whatever its state (revoked, expired…), or null; for
   * leak reports and support tooling. Nothing is consumed and no cache is touched.
   */
  async findBySecret(secret: string): Promise<ApiKeyInfo | null> {
    if (!this.parse(secret).ok) return null;
    const row = await guard(() =>
      this.rt.prisma.apiKey.findUnique({ where: { digest: this.digest(secret) } }),
    );
    return row === null ? null : keyInfo(this.rt, row);
  }

  async get(id: string): Promise<ApiKeyInfo> {
    const keyId = keyIdOrNotFound(id);
    const row = await guard(() => this.rt.prisma.apiKey.findUnique({ where: { id: keyId } }));
    if (row === null) throw new FluxError("not_found", { detail: "No such key." });
    return keyInfo(this.rt, row);
  }

  /** An org's keys, newest first. */
  async list(query: KeyListQuery): Promise<Page<ApiKeyInfo>> {
    if (!query || typeof query.orgId !== "string") {
      throw new FluxError("invalid_request", { detail: "list() needs an orgId." });
    }
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
    const now = new Date(this.rt.now());
    const cursor = query.cursor ? decodeCursor(query.cursor) : null;
    const where: Prisma.ApiKeyWhereInput = {
      orgId: query.orgId,
      ...statusFilter(query.status, now),
      ...(cursor
        ? {
            // The range bound lets the (org, created_at desc, id desc) index start at the cursor
            // instead of reading every newer key of the org first.
            createdAt: { lte: cursor.createdAt },
            OR: [
              { createdAt: { lt: cursor.createdAt } },
              { createdAt: cursor.createdAt, id: { lt: cursor.id } },
            ],
          }
        : {}),
    };
    const rows = await guard(() =>
      this.rt.prisma.apiKey.findMany({
        where,
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: limit + 1,
      }),
    );
    const items = rows.slice(0, limit).map((row) => keyInfo(this.rt, row));
    const last = rows[limit - 1];
    return {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }

  async update(id: string, changes: KeyChanges, options: { actor?: Actor } = {}): Promise<ApiKeyInfo> {
    const parsed = parseInput(changesSchema, changes, "changes");
    const actor = options.actor ?? SYSTEM_ACTOR;
    const now = this.rt.now();
    if (parsed.expiresAt && parsed.expiresAt.getTime() <= now) {
      throw new FluxError("invalid_request", { detail: "expiresAt must be in the future." });
    }
    const scopes = parsed.scopes === undefined ? undefined : normalizeScopes(parsed.scopes);
    const keyId = keyIdOrNotFound(id);
    const row = await keyTransaction(this.rt, async (tx) => {
      const before = await tx.apiKey.findUnique({
        where: { id: keyId },
        include: { org: { include: { plan: true } } },
      });
      if (before === null) throw new FluxError("not_found", { detail: "No such key." });
      if (before.revokedAt !== null) {
        throw new FluxError("key_conflict", { detail: "A revoked key cannot be changed." });
      }
      if (scopes !== undefined) assertWithinPlan(scopes, before.org.plan?.scopes ?? []);
      const data: Prisma.ApiKeyUpdateManyMutationInput = { version: { increment: 1 } };
      if (parsed.name !== undefined) data.name = parsed.name;
      if (scopes !== undefined) data.scopes = scopes;
      if (parsed.metadata !== undefined) data.metadata = parsed.metadata as Prisma.InputJsonValue;
      if (parsed.rateLimits !== undefined) data.rateLimits = jsonOrNull(parsed.rateLimits);
      if (parsed.quota !== undefined) data.quota = jsonOrNull(parsed.quota);
      if (parsed.expiresAt !== undefined) data.expiresAt = parsed.expiresAt;
      if (parsed.allowFrom !== undefined) data.allowFrom = normalizeNetworks(parsed.allowFrom);
      const { count } = await tx.apiKey.updateMany({
        where: { id: before.id, version: before.version },
        data,
      });
      if (count === 0) throw new FluxError("key_conflict");
      const at = new Date(now);
      const changed = Object.keys(parsed).filter((field) => field !== "scopes");
      if (changed.length > 0) {
        await writeAudit(tx, {
          action: "key.updated",
          actor,
          orgId: before.orgId,
          keyId: before.id,
          details: { changed },
          at,
        });
      }
      if (scopes !== undefined && scopes.join(" ") !== before.scopes.join(" ")) {
        await writeAudit(tx, {
          action: "key.scopes_changed",
          actor,
          orgId: before.orgId,
          keyId: before.id,
          details: { from: before.scopes, to: scopes },
          at,
        });
      }
      return tx.apiKey.findUniqueOrThrow({ where: { id: before.id } });
    });
    await this.rt.bus.publish({ kind: "key", id: row.id });
    return keyInfo(this.rt, row);
  }

  /**
   * Revokes a key at once, and with it the keys it replaced that are still in their rotation
   * grace (its lineage), each with its own audit event; `{ lineage: false }` revokes this key
   * only. `revokedWith` lists the predecessors revoked by this call. Idempotent: revoking a
   * revoked key returns it unchanged (its predecessors still in grace are revoked then).
   */
  async revoke(
    id: string,
    options: { reason?: string; actor?: Actor; lineage?: boolean } = {},
  ): Promise<RevokedKey> {
    const reason =
      options.reason === undefined ? null : parseInput(z.string().max(500), options.reason, "reason");
    if (options.lineage !== undefined && typeof options.lineage !== "boolean") {
      throw new FluxError("invalid_request", { detail: "lineage must be a boolean." });
    }
    const actor = options.actor ?? SYSTEM_ACTOR;
    const keyId = keyIdOrNotFound(id);
    const { row, revokedWith } = await keyTransaction(this.rt, async (tx) => {
      const before = await tx.apiKey.findUnique({ where: { id: keyId } });
      if (before === null) throw new FluxError("not_found", { detail: "No such key." });
      const now = new Date(this.rt.now());
      let row = before;
      if (before.revokedAt === null) {
        const revoked = await this.revokeRow(tx, before, { reason, actor, now, details: { reason } });
        if (revoked === null) {
          const current = await tx.apiKey.findUniqueOrThrow({ where: { id: before.id } });
          if (current.revokedAt === null) throw new FluxError("key_conflict");
          row = current;
        } else {
          row = revoked;
        }
      }
      const revokedWith: string[] = [];
      if (options.lineage === false) return { row, revokedWith };
      // Walk back through the keys this one replaced: a predecessor still in grace would keep
      // the revoked key's access alive until its sunset.
      let successorId = before.id;
      for (let hops = 0; hops < 1_000; hops++) {
        const predecessor = await tx.apiKey.findUnique({ where: { replacedById: successorId } });
        if (predecessor === null) break;
        successorId = predecessor.id;
        if (keyStatus(predecessor, now.getTime()) !== "grace") continue;
        const revoked = await this.revokeRow(tx, predecessor, {
          reason,
          actor,
          now,
          details: { reason, lineageOf: before.id },
        });
        if (revoked === null) throw new FluxError("key_conflict");
        revokedWith.push(predecessor.id);
      }
      return { row, revokedWith };
    });
    await this.rt.bus.publish({ kind: "key", id: row.id });
    for (const predecessor of revokedWith) await this.rt.bus.publish({ kind: "key", id: predecessor });
    return { ...keyInfo(this.rt, row), revokedWith };
  }

  /** Marks one key revoked (if still at the version read), with its audit and lifecycle events. */
  private async revokeRow(
    tx: Prisma.TransactionClient,
    before: ApiKeyRow,
    change: { reason: string | null; actor: Actor; now: Date; details: Record<string, unknown> },
  ): Promise<ApiKeyRow | null> {
    const { count } = await tx.apiKey.updateMany({
      where: { id: before.id, version: before.version, revokedAt: null },
      data: { revokedAt: change.now, revokedReason: change.reason, version: { increment: 1 } },
    });
    if (count === 0) return null;
    await writeAudit(tx, {
      action: "key.revoked",
      actor: change.actor,
      orgId: before.orgId,
      keyId: before.id,
      details: change.details,
      at: change.now,
    });
    await this.rt.events.record(tx, keyRevoked(before, change.reason, change.actor));
    return tx.apiKey.findUniqueOrThrow({ where: { id: before.id } });
  }

  /** @internal Used by KeyBuilder. */
  async issue(spec: KeySpec): Promise<IssuedKey> {
    const prefix = this.rt.options.keyPrefix;
    const nowMs = this.rt.now();
    if (spec.expiresAt && spec.expiresAt.getTime() <= nowMs) {
      throw new FluxError("invalid_request", { detail: "expiresAt must be in the future." });
    }
    const { secret } = generateKey(prefix, spec.environment);
    const digest = this.digest(secret);
    const actor = spec.actor ?? SYSTEM_ACTOR;
    const row = await keyTransaction(this.rt, async (tx) => {
      const org = await tx.org.findUnique({ where: { id: spec.orgId }, include: { plan: true } });
      if (org === null) throw new FluxError("not_found", { detail: "No such org." });
      assertWithinPlan(spec.scopes, org.plan?.scopes ?? []);
      if (spec.maxActiveKeys !== undefined) await assertActiveKeyRoom(tx, org.id, spec.maxActiveKeys, nowMs);
      const created = await tx.apiKey.create({
        data: {
          id: randomId("key"),
          orgId: org.id,
          name: spec.name,
          digest,
          ...displayParts(secret, prefix),
          environment: spec.environment,
          scopes: spec.scopes,
          rateLimits: jsonOrNull(spec.rateLimits),
          allowFrom: spec.allowFrom,
          quota: jsonOrNull(spec.quota),
          metadata: spec.metadata as Prisma.InputJsonValue,
          expiresAt: spec.expiresAt,
          createdByType: actor.type,
          createdById: actor.id ?? null,
          createdAt: new Date(nowMs),
        },
      });
      await writeAudit(tx, {
        action: "key.created",
        actor,
        orgId: org.id,
        keyId: created.id,
        details: {
          name: created.name,
          scopes: created.scopes,
          environment: created.environment,
          expiresAt: created.expiresAt?.toISOString() ?? null,
        },
        at: new Date(nowMs),
      });
      await this.rt.events.record(tx, keyCreated(created, actor));
      return created;
    });
    // Nobody should have presented this secret before, but if someone did, no instance may keep
    // answering "unknown" for it. Entries are keyed by digest, which never leaves the process,
    // so every instance drops all of its unknown-key entries; their digest filters learn the key
    // from 64 bits of its digest (applied here before `issue()` returns).
    await this.rt.bus.publish({ kind: "unknown-keys", filter: [filterHash(digest)] });
    return { key: keyInfo(this.rt, row), secret };
  }
}

function statusFilter(status: KeyStatus | undefined, now: Date): Prisma.ApiKeyWhereInput {
  const notExpired = { OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] };
  switch (status) {
    case undefined:
      return {};
    case "revoked":
      return { revokedAt: { not: null } };
    case "active":
      return { revokedAt: null, sunsetAt: null, AND: [notExpired] };
    case "grace":
      return { revokedAt: null, sunsetAt: { gt: now }, AND: [notExpired] };
    case "expired":
      return { revokedAt: null, AND: [{ OR: [{ expiresAt: { lte: now } }, { sunsetAt: { lte: now } }] }] };
    default:
      throw new FluxError("invalid_request", { detail: "status must be active, grace, expired or revoked." });
  }
}
