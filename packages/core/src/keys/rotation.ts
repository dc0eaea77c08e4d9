/**
 * Rotation: a successor with the same grants, and the old key valid until its grace ends.
 */
import { writeAudit } from "../audit.js";
import { type Duration, toMs } from "../duration.js";
import { FluxError } from "../errors.js";
import { keyCreated, keyRotated } from "../events/key-events.js";
import type { Prisma } from "../generated/prisma/client.js";
import type { Runtime } from "../runtime.js";
import { SYSTEM_ACTOR } from "../runtime.js";
import type { Actor, ApiKeyInfo } from "../types.js";
import { filterHash } from "./digest-filter.js";
import { displayParts, generateKey, type KeyEnvironment, randomId } from "./format.js";
import { keyStatus } from "./record.js";
import { type IssuedKey, jsonOrNull, keyIdOrNotFound, keyInfo, keyTransaction } from "./rows.js";

export interface RotatedKey extends IssuedKey {
  /** The replaced key, now in its grace period (or expired when the grace is 0). */
  previous: ApiKeyInfo;
}

const MAX_GRACE_MS = 90 * 86_400_000;

/**
 * Issues a successor with the same org, scopes, limits, quota and metadata. The old key keeps
 * verifying (with `rotation` in its context) until the grace period ends, then fails with
 * `key_expired`. A key has at most one successor: a concurrent rotate or revoke loses with
 * `key_conflict`.
 */
export async function rotateKey(
  rt: Runtime,
  digest: (secret: string) => string,
  id: string,
  options: { gracePeriod: Duration; actor?: Actor; expiresAt?: Date | null },
): Promise<RotatedKey> {
  const graceMs = toMs(options?.gracePeriod as Duration, "gracePeriod");
  if (graceMs > MAX_GRACE_MS) {
    throw new FluxError("invalid_request", { detail: "gracePeriod may be at most 90 days." });
  }
  const actor = options.actor ?? SYSTEM_ACTOR;
  const prefix = rt.options.keyPrefix;
  const keyId = keyIdOrNotFound(id);
  const result = await keyTransaction(rt, async (tx) => {
    const before = await tx.apiKey.findUnique({ where: { id: keyId } });
    if (before === null) throw new FluxError("not_found", { detail: "No such key." });
    const nowMs = rt.now();
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
        digest: digest(secret),
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
    await rt.events.record(tx, keyRotated(before, successor.id, sunsetAt, actor));
    await rt.events.record(tx, keyCreated(successor, actor, before.id));
    const previous = await tx.apiKey.findUniqueOrThrow({ where: { id: before.id } });
    return { successor, previous, secret };
  });
  await rt.bus.publish({ kind: "key", id: result.previous.id });
  await rt.bus.publish({ kind: "unknown-keys", filter: [filterHash(result.successor.digest)] });
  return {
    key: keyInfo(rt, result.successor),
    secret: result.secret,
    previous: keyInfo(rt, result.previous),
  };
}
