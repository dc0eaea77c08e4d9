/**
 * What every write of the key lifecycle shares: the transaction it runs in (lifecycle events
 * delivered on commit, conflicts and outages as typed errors), and the public shape of a row.
 */
import { isUniqueViolation, toStoreError } from "../database.js";
import { FluxError } from "../errors.js";
import { type ApiKey as ApiKeyRow, Prisma } from "../generated/prisma/client.js";
import type { Runtime } from "../runtime.js";
import type { Actor, ApiKeyInfo, Quota, RateLimitWindow } from "../types.js";
import { idOrNotFound } from "../validation.js";
import type { KeyEnvironment } from "./format.js";
import { keyStatus } from "./record.js";

export interface IssuedKey {
  key: ApiKeyInfo;
  /** The secret. It exists only in this return value: show it once, never store it. */
  secret: string;
}

/** Key ids are generated (`key_` + base62); anything else is an unknown key, without a query. */
export function keyIdOrNotFound(id: unknown): string {
  return idOrNotFound(id, "No such key.");
}

export async function keyTransaction<T>(
  rt: Runtime,
  fn: (tx: Prisma.TransactionClient) => Promise<T>,
): Promise<T> {
  try {
    // Lifecycle events recorded in `fn` reach in-process listeners once this commits.
    return await rt.events.transaction(rt.prisma, fn);
  } catch (error) {
    if (isUniqueViolation(error)) throw new FluxError("key_conflict");
    throw toStoreError(error);
  }
}

export function keyInfo(rt: Runtime, row: ApiKeyRow): ApiKeyInfo {
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
    status: keyStatus(row, rt.now()),
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

export function jsonOrNull(value: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull {
  return value === null || value === undefined ? Prisma.DbNull : (value as Prisma.InputJsonValue);
}
