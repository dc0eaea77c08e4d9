/**
 * The key lifecycle (issue, read, update, rotate, revoke) and verification.
 *
 * Verification order, cheapest first: parse + checksum (no I/O for garbage) -> LRU by digest ->
 * one indexed read that also brings org, plan and entitlements -> revoked / expired / grace ->
 * context. Expected denials are returned as data by `check()`; `verify()` throws them.
 */
import { createHmac, hash } from "node:crypto";
import { z } from "zod";
import { writeAudit } from "./audit.js";
import { guard, isUniqueViolation, toStoreError } from "./database.js";
import { type Duration, toMs } from "./duration.js";
import { FluxError, type FluxErrorCode } from "./errors.js";
import { keyCreated, keyRevoked, keyRotated } from "./events/key-events.js";
import { type ApiKey as ApiKeyRow, Prisma } from "./generated/prisma/client.js";
import { assertActiveKeyRoom } from "./keys/active-key-limit.js";
import { KeyBuilder, type KeySpec, normalizeNetworks } from "./keys/builder.js";
import { filterHash } from "./keys/digest-filter.js";
import {
  createKeyParser,
  displayParts,
  generateKey,
  type KeyEnvironment,
  type KeyParser,
  keyLengthOf,
  randomId,
} from "./keys/format.js";
import { baseContext, type KeyRecord, keyStatus, loadKeyRecord, withRateLimit } from "./keys/record.js";
import { compileTrust } from "./limits/client-address.js";
import type { Runtime } from "./runtime.js";
import { SYSTEM_ACTOR } from "./runtime.js";
import { assertWithinPlan, normalizeScopes, requirementError, scopeCovers } from "./scopes.js";
import type { VerificationProbe } from "./telemetry/telemetry.js";
import type { Actor, ApiKeyInfo, KeyContext, KeyStatus, Page, Quota, RateLimitWindow } from "./types.js";
import {
  displayName,
  ID_PATTERN,
  idOrNotFound,
  metadataSchema,
  parseInput,
  quotaSchema,
  rateLimitsSchema,
} from "./validation.js";

export interface VerifyOptions {
  /** Units this request consumes from the key's limits and quota. `0` only reads. @default 1 */
  cost?: number;
  /**
   * The client's address (see `clientAddress()`), for the pre-authentication limiter: failed
   * authentications from it are counted and, past `limits.preAuth`, every attempt from it is
   * refused with `rate_limited` before any database read. Omit it to skip that limiter.
   */
  clientAddress?: string;
  /** Scopes the request needs: refused with `scope_denied` (before any limit is consumed). */
  scopes?: readonly string[];
  /** Entitlements the request needs: refused with `entitlement_denied` (nothing consumed). */
  entitlements?: readonly string[];
}

/** The key a denial is about, once it was identified. */
export interface DeniedKey {
  readonly keyId: string;
  readonly orgId: string;
}

/**
 * `key` is set on a denial of an identified key (revoked, expired, address, scope, entitlement,
 * limits): usage records it with its outcome. Absent when no key was identified (missing,
 * malformed, unknown).
 */
export type CheckResult =
  | { valid: true; context: KeyContext }
  | { valid: false; error: FluxError; key?: DeniedKey };

export interface IssuedKey {
  key: ApiKeyInfo;
  /** The secret. It exists only in this return value: show it once, never store it. */
  secret: string;
}

export interface RevokedKey extends ApiKeyInfo {
  /** Predecessors still in their rotation grace that this revocation ended too (oldest last). */
  revokedWith: string[];
}

export interface RotatedKey extends IssuedKey {
  /** The replaced key, now in its grace period (or expired when the grace is 0). */
  previous: ApiKeyInfo;
}

export interface GraceUsage {
  keyId: string;
  inGrace: boolean;
  replacedBy: string | null;
  sunsetAt: Date | null;
  /** Calls seen while in grace (all clients). */
  calls: number;
  lastSeenAt: Date | null;
  /** Most recent first. */
  clients: Array<{ address: string; userAgent: string; firstSeenAt: Date; lastSeenAt: Date; calls: number }>;
}

export interface ScopeSuggestion {
  keyId: string;
  current: string[];
  /** Scopes required by the routes the key called, with counts. */
  used: Array<{ scope: string; calls: number; lastUsedAt: Date }>;
  /** The narrower scope set that covers what the key did. */
  suggested: string[];
  /** Current scopes that covered none of the key's calls. */
  unused: string[];
  /** Whether `suggested` is narrower than `current`. */
  narrower: boolean;
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

const MAX_GRACE_MS = 90 * 86_400_000;

/** Denials returned by `check()` are shared, immutable values: no allocation under attack. */
const DENIALS = Object.fromEntries(
  (
    [
      "key_missing",
      "key_malformed",
      "key_invalid",
      "key_revoked",
      "key_expired",
      "store_unavailable",
      "ip_not_allowed",
      "org_suspended",
    ] as const
  ).map((code) => [
    code,
    Object.freeze({ valid: false as const, error: Object.freeze(new FluxError(code)) }),
  ]),
) as Record<
  | "key_missing"
  | "key_malformed"
  | "key_invalid"
  | "key_revoked"
  | "key_expired"
  | "store_unavailable"
  | "ip_not_allowed"
  | "org_suspended",
  { valid: false; error: FluxError }
>;

/** A shared denial, about this key. */
function identified(
  denial: { valid: false; error: FluxError },
  record: KeyRecord,
): { valid: false; error: FluxError; key: DeniedKey } {
  return { valid: false, error: denial.error, key: record.identity };
}

/** A key of an environment this deployment does not accept (`environments`, e.g. a test key on live). */
const WRONG_ENVIRONMENT = Object.freeze({
  valid: false as const,
  error: Object.freeze(
    new FluxError("key_invalid", { detail: "Keys of this environment are not accepted here." }),
  ),
});

/** Key ids are generated (`key_` + base62); anything else is an unknown key, without a query. */
function keyIdOrNotFound(id: unknown): string {
  return idOrNotFound(id, "No such key.");
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

export class Keys {
  private readonly parse: KeyParser;
  /** Length of every well-formed key of this prefix. */
  private readonly keyLength: number;
  private readonly loading = new Map<string, Promise<KeyRecord | null>>();

  constructor(private readonly rt: Runtime) {
    this.parse = createKeyParser(rt.options.keyPrefix);
    this.keyLength = keyLengthOf(rt.options.keyPrefix);
  }

  /** Starts issuing a key: `flux.keys.create().forOrg(id).withScopes([...]).issue()`. */
  create(): KeyBuilder {
    return new KeyBuilder(this);
  }

  /** Verifies a presented key and returns its context; throws a FluxError on any denial. */
  async verify(secret: unknown, options?: VerifyOptions): Promise<KeyContext> {
    const result = await this.check(secret, options);
    if (result.valid) return result.context;
    throw new FluxError(result.error.code, {
      detail: result.error.detail,
      extensions: result.error.extensions,
    });
  }

  /** Like `verify()`, without throwing: `{ valid: true, context } | { valid: false, error }`. */
  check(secret: unknown, options?: VerifyOptions): Promise<CheckResult> {
    // Not async: without an SDK this is one property read more than the check itself.
    const telemetry = this.rt.telemetry;
    if (!telemetry.enabled) return this.checkKey(secret, options, null);
    const probe = telemetry.startVerification();
    return this.checkKey(secret, options, probe).then(
      (result) => {
        telemetry.endVerification(probe, result);
        return result;
      },
      (error: unknown) => {
        telemetry.failedVerification(probe, error);
        throw error;
      },
    );
  }

  private async checkKey(
    secret: unknown,
    options: VerifyOptions | undefined,
    probe: VerificationProbe | null,
  ): Promise<CheckResult> {
    const address = options?.clientAddress;
    if (address !== undefined) {
      const refused = this.rt.limits.refusedAddress(address);
      if (refused !== null) return refused;
    }
    // A cached known key is its own proof of format: only an issued key hashes to a cached digest,
    // so its checksum was right. Anything else is parsed (format, checksum) before any I/O.
    const digest =
      typeof secret === "string" && secret.length === this.keyLength ? this.digest(secret) : undefined;
    let record: KeyRecord | null | undefined = digest === undefined ? undefined : this.rt.cache.get(digest);
    if (probe !== null && record !== undefined) probe.lookup = "hit";
    if (record === undefined) {
      const parsed = this.parse(secret);
      if (!parsed.ok) return this.failed(DENIALS[parsed.code], address);
      if (!this.rt.options.environments.has(parsed.environment))
        return this.failed(WRONG_ENVIRONMENT, address);
    } else if (!this.rt.options.environments.has(record.environment)) {
      return this.failed(WRONG_ENVIRONMENT, address);
    }
    if (options?.cost !== undefined && !(Number.isInteger(options.cost) && options.cost >= 0)) {
      return {
        valid: false,
        error: new FluxError("invalid_request", { detail: "cost must be a non-negative integer." }),
      };
    }
    // Not cached: unknown to the digest filter (past the lookup budget) or remembered as unknown
    // means no I/O. A well-formed key has the exact length, so its digest was computed above.
    // A request that finds the digest's read in flight joins it without spending the budget.
    if (
      record === undefined &&
      !this.loading.has(digest as string) &&
      this.rt.unknownKeys.admit(digest as string) === "unknown"
    ) {
      record = null;
      if (probe !== null) probe.lookup = "negative";
    }
    if (record === undefined) {
      if (probe !== null) probe.lookup = "miss";
      try {
        record = await this.load(digest as string);
      } catch {
        return DENIALS.store_unavailable;
      }
    } else if (record !== null && !this.rt.bus.trusts(record.readAt)) {
      // This instance cannot prove it hears every change: the record is read again (one read
      // per key at a time). If the database cannot be read either, no change can commit.
      try {
        record = await this.load(digest as string);
      } catch {
        if (this.rt.options.invalidation.whenDatabaseDown === "refuse") return DENIALS.store_unavailable;
      }
    }
    if (record === null) return this.failed(DENIALS.key_invalid, address);
    if (probe !== null) probe.record = record;
    const now = this.rt.now();
    // The same status rule as listings and the portal: revoked, then expired (expiry or grace end).
    const status = keyStatus(record, now);
    if (status === "revoked") return this.failed(identified(DENIALS.key_revoked, record), address);
    if (status === "expired") return this.failed(identified(DENIALS.key_expired, record), address);
    // A valid key of a suspended org: not a failed authentication of the client address.
    if (record.orgSuspended) return identified(DENIALS.org_suspended, record);
    if (record.allowFrom.length > 0) {
      record.allowed ??= compileTrust(record.allowFrom);
      // No address to check (core called without one) is refused too: the rule fails closed.
      if (address === undefined || !record.allowed(address, 0)) {
        return this.failed(identified(DENIALS.ip_not_allowed, record), address);
      }
    }
    const base = baseContext(record, now);
    // A request the key is not allowed to make is refused before it consumes anything.
    if (options?.scopes !== undefined || options?.entitlements !== undefined) {
      const denied = requirementError(base, options.scopes, options.entitlements);
      if (denied !== null) return { valid: false, error: denied, key: record.identity };
    }
    // Keys without limits never touch the limiter.
    const limits = this.rt.limits.applicable(record);
    if (limits === null) return { valid: true, context: withRateLimit(base, null) };
    const decided = await this.rt.limits.decide(limits, options?.cost ?? 1, base);
    return decided.valid ? decided : { valid: false, error: decided.error, key: record.identity };
  }

  /** A failed authentication, counted against the client address when there is one. */
  private failed(
    denial: CheckResult & { valid: false },
    address: string | undefined,
  ): CheckResult | Promise<CheckResult> {
    return address === undefined ? denial : this.rt.limits.authFailed(address, denial);
  }

  /**
   * Gives back what a verified request consumed, when it is denied after verification (e.g. by a
   * route-level scope guard that runs later). A no-op for keys without limits, or whose record
   * has left the cache since (then the units stay consumed).
   */
  async release(context: KeyContext, cost = 1): Promise<void> {
    if (context.rateLimit === null || !(Number.isInteger(cost) && cost > 0)) return;
    const record = this.rt.cache.recordOf(context.keyId);
    if (record === undefined) return;
    const bound = this.rt.limits.applicable(record);
    if (bound !== null) await this.rt.limits.giveBack(bound, cost);
  }

  /** One database read per digest at a time, however many requests miss the cache together. */
  private load(digest: string): Promise<KeyRecord | null> {
    const pending = this.loading.get(digest);
    if (pending) return pending;
    const epoch = this.rt.cache.currentEpoch();
    const unknownEpoch = this.rt.unknownKeys.currentEpoch();
    const promise = loadKeyRecord(this.rt.prisma, digest)
      .then((record) => {
        // Unknown digests go to their own bounded cache, never among the known keys.
        if (record !== null) this.rt.cache.set(digest, record, epoch);
        this.rt.unknownKeys.settle(digest, record !== null, unknownEpoch);
        return record;
      })
      .finally(() => this.loading.delete(digest));
    this.loading.set(digest, promise);
    return promise;
  }

  /** @internal The instance clock. */
  now(): number {
    return this.rt.now();
  }

  /** @internal SHA-256 of the secret, or HMAC-SHA-256 with the pepper. */
  digest(secret: string): string {
    const pepper = this.rt.options.pepper;
    // One-shot hash: no Hash object per request (about 0.5 µs less on the hot path).
    if (pepper === undefined) return hash("sha256", secret, "hex");
    return createHmac("sha256", pepper).update(secret).digest("hex");
  }

  /**
   * Notes what an adapter saw of a verified request: the scopes its route required (for
   * `suggestScopes`) and, while the key is in a rotation grace, the client that used it (for
   * `graceUsage`). Buffered in memory; no I/O here.
   */
  observe(
    context: KeyContext,
    seen: {
      scopes?: readonly string[] | undefined;
      clientAddress?: string | null;
      userAgent?: string | null;
    },
  ): void {
    if (seen.scopes !== undefined && seen.scopes.length > 0) {
      this.rt.observations.noteScopes(context.keyId, seen.scopes);
    }
    if (context.rotation !== null) {
      this.rt.observations.noteClient(context.keyId, seen.clientAddress, seen.userAgent);
    }
  }

  /**
   * Who still uses a key during its rotation grace: the clients (address and user agent, most
   * recent first, at most `limit`) and their calls since the rotation.
   */
  async graceUsage(id: string, options: { limit?: number } = {}): Promise<GraceUsage> {
    const key = await this.get(id);
    await this.rt.observations.flush();
    const limit = Math.min(Math.max(options.limit ?? 20, 1), 200);
    const [rows, totals] = await guard(() =>
      Promise.all([
        this.rt.prisma.keyClient.findMany({
          // Not the row that sums the clients past `observations.maxClientsPerKey`.
          where: { keyId: key.id, address: { not: "" } },
          orderBy: { lastSeenAt: "desc" },
          take: limit,
        }),
        this.rt.prisma.keyClient.aggregate({
          where: { keyId: key.id },
          _sum: { calls: true },
          _max: { lastSeenAt: true },
        }),
      ]),
    );
    return {
      keyId: key.id,
      inGrace: key.status === "grace",
      replacedBy: key.replacedById,
      sunsetAt: key.sunsetAt,
      calls: Number(totals._sum.calls ?? 0n),
      lastSeenAt: totals._max.lastSeenAt ?? null,
      clients: rows.map((row) => ({
        address: row.address,
        userAgent: row.userAgent,
        firstSeenAt: row.firstSeenAt,
        lastSeenAt: row.lastSeenAt,
        calls: Number(row.calls),
      })),
    };
  }

  /**
   * Least privilege: the scopes the key actually exercised (as required by the routes it called)
   * since `since`, and the narrower set it could hold instead of its current scopes.
   */
  async suggestScopes(id: string, options: { since?: Date } = {}): Promise<ScopeSuggestion> {
    const key = await this.get(id);
    await this.rt.observations.flush();
    const rows = await guard(() =>
      this.rt.prisma.keyScopeUse.findMany({
        where: { keyId: key.id, ...(options.since ? { lastUsedAt: { gte: options.since } } : {}) },
        orderBy: { scope: "asc" },
      }),
    );
    const used = rows.filter((row) => scopeCovers(key.scopes, row.scope));
    const suggested = used.map((row) => row.scope);
    return {
      keyId: key.id,
      current: key.scopes,
      used: used.map((row) => ({ scope: row.scope, calls: Number(row.calls), lastUsedAt: row.lastUsedAt })),
      suggested,
      unused: key.scopes.filter((scope) => !used.some((row) => scopeCovers([scope], row.scope))),
      narrower: suggested.length < key.scopes.length || key.scopes.some((scope) => scope.endsWith("*")),
    };
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
    return row === null ? null : this.info(row);
  }

  async get(id: string): Promise<ApiKeyInfo> {
    const keyId = keyIdOrNotFound(id);
    const row = await guard(() => this.rt.prisma.apiKey.findUnique({ where: { id: keyId } }));
    if (row === null) throw new FluxError("not_found", { detail: "No such key." });
    return this.info(row);
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
    const items = rows.slice(0, limit).map((row) => this.info(row));
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
    const row = await this.transaction(async (tx) => {
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
    return this.info(row);
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
    const { row, revokedWith } = await this.transaction(async (tx) => {
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
    return { ...this.info(row), revokedWith };
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

  /**
   * Issues a successor with the same org, scopes, limits, quota and metadata. The old key keeps
   * verifying (with `rotation` in its context) until the grace period ends, then fails with
   * `key_expired`. A key has at most one successor: a concurrent rotate or revoke loses with
   * `key_conflict`.
   */
  async rotate(
    id: string,
    options: { gracePeriod: Duration; actor?: Actor; expiresAt?: Date | null },
  ): Promise<RotatedKey> {
    const graceMs = toMs(options?.gracePeriod as Duration, "gracePeriod");
    if (graceMs > MAX_GRACE_MS) {
      throw new FluxError("invalid_request", { detail: "gracePeriod may be at most 90 days." });
    }
    const actor = options.actor ?? SYSTEM_ACTOR;
    const prefix = this.rt.options.keyPrefix;
    const keyId = keyIdOrNotFound(id);
    const result = await this.transaction(async (tx) => {
      const before = await tx.apiKey.findUnique({ where: { id: keyId } });
      if (before === null) throw new FluxError("not_found", { detail: "No such key." });
      const nowMs = this.rt.now();
      const status = keyStatus(before, nowMs);
      if (status !== "active") {
        throw new FluxError("key_conflict", {
          detail: `A key that is ${status === "grace" ? "already rotated" : status} cannot be rotated.`,
        });
      }
      const now = new Date(nowMs);
      let expiresAt: Date | null;
      if (options.expiresAt !== undefined) expiresAt = options.expiresAt;
      else if (before.expiresAt === null) expiresAt = null;
      else expiresAt = new Date(nowMs + (before.expiresAt.getTime() - before.createdAt.getTime()));
      const { secret } = generateKey(prefix, before.environment as KeyEnvironment);
      const successor = await tx.apiKey.create({
        data: {
          id: randomId("key"),
          orgId: before.orgId,
          name: before.name,
          digest: this.digest(secret),
          ...displayParts(secret, prefix),
          environment: before.environment,
          scopes: before.scopes,
          rateLimits: jsonOrNull(before.rateLimits),
          allowFrom: before.allowFrom,
          lineageId: before.lineageId ?? before.id,
          quota: jsonOrNull(before.quota),
          metadata: before.metadata as Prisma.InputJsonValue,
          expiresAt,
          createdByType: actor.type,
          createdById: actor.id ?? null,
          createdAt: now,
        },
      });
      const sunsetAt = new Date(nowMs + graceMs);
      const { count } = await tx.apiKey.updateMany({
        where: { id: before.id, version: before.version, revokedAt: null, replacedById: null },
        data: { replacedById: successor.id, sunsetAt, version: { increment: 1 } },
      });
      if (count === 0) throw new FluxError("key_conflict");
      await writeAudit(tx, {
        action: "key.rotated",
        actor,
        orgId: before.orgId,
        keyId: before.id,
        details: { replacedBy: successor.id, sunsetAt: sunsetAt.toISOString(), gracePeriodMs: graceMs },
        at: now,
      });
      await writeAudit(tx, {
        action: "key.created",
        actor,
        orgId: before.orgId,
        keyId: successor.id,
        details: { rotatedFrom: before.id, scopes: successor.scopes, environment: successor.environment },
        at: now,
      });
      await this.rt.events.record(tx, keyRotated(before, successor.id, sunsetAt, actor));
      await this.rt.events.record(tx, keyCreated(successor, actor, before.id));
      const previous = await tx.apiKey.findUniqueOrThrow({ where: { id: before.id } });
      return { successor, previous, secret };
    });
    await this.rt.bus.publish({ kind: "key", id: result.previous.id });
    await this.rt.bus.publish({ kind: "unknown-keys", filter: [filterHash(result.successor.digest)] });
    return { key: this.info(result.successor), secret: result.secret, previous: this.info(result.previous) };
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
    const row = await this.transaction(async (tx) => {
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
    return { key: this.info(row), secret };
  }

  private async transaction<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    try {
      // Lifecycle events recorded in `fn` reach in-process listeners once this commits.
      return await this.rt.events.transaction(this.rt.prisma, fn);
    } catch (error) {
      if (isUniqueViolation(error)) throw new FluxError("key_conflict");
      throw toStoreError(error);
    }
  }

  private info(row: ApiKeyRow): ApiKeyInfo {
    return {
      id: row.id,
      orgId: row.orgId,
      name: row.name,
      start: row.start,
      last4: row.last4,
      environment: row.environment as KeyEnvironment,
      scopes: row.scopes,
      rateLimits: (row.rateLimits ?? null) as RateLimitWindow[] | null,
      allowFrom: row.allowFrom,
      quota: (row.quota ?? null) as Quota | null,
      metadata: (row.metadata ?? {}) as Record<string, unknown>,
      status: keyStatus(row, this.rt.now()),
      expiresAt: row.expiresAt,
      revokedAt: row.revokedAt,
      revokedReason: row.revokedReason,
      replacedById: row.replacedById,
      sunsetAt: row.sunsetAt,
      createdBy: { type: row.createdByType as Actor["type"], id: row.createdById },
      lastUsedAt: row.lastUsedAt,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }
}

function jsonOrNull(value: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull {
  return value === null || value === undefined ? Prisma.DbNull : (value as Prisma.InputJsonValue);
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

function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.getTime()}|${id}`).toString("base64url");
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [ms, id] = Buffer.from(String(cursor), "base64url").toString("utf8").split("|");
  if (!ms || !id || !/^\d{1,15}$/.test(ms) || !ID_PATTERN.test(id)) {
    throw new FluxError("invalid_request", { detail: "cursor is not valid." });
  }
  return { createdAt: new Date(Number(ms)), id };
}

export type { FluxErrorCode };
