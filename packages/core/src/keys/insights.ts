/**
 * What adapters saw of verified requests, and what it says: who still uses a key in its rotation
 * grace (`graceUsage`) and the narrower scopes a key could hold (`suggestScopes`).
 */
import { guard } from "../database.js";
import type { Runtime } from "../runtime.js";
import { scopeCovers } from "../scopes.js";
import type { ApiKeyInfo, KeyContext } from "../types.js";

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

/**
 * Notes what an adapter saw of a verified request: the scopes its route required (for
 * `suggestScopes`) and, while the key is in a rotation grace, the client that used it (for
 * `graceUsage`). Buffered in memory; no I/O here.
 */
/** What an adapter saw of a verified request. */
export interface SeenRequest {
  scopes?: readonly string[] | undefined;
  clientAddress?: string | null;
  userAgent?: string | null;
}

export function observeRequest(rt: Runtime, context: KeyContext, seen: SeenRequest): void {
  if (seen.scopes !== undefined && seen.scopes.length > 0) {
    rt.observations.noteScopes(context.keyId, seen.scopes);
  }
  if (context.rotation !== null) {
    rt.observations.noteClient(context.keyId, seen.clientAddress, seen.userAgent);
  }
}

/**
 * Who still uses a key during its rotation grace: the clients (address and user agent, most
 * recent first, at most `limit`) and their calls since the rotation.
 */
export async function graceUsage(
  rt: Runtime,
  key: ApiKeyInfo,
  options: { limit?: number } = {},
): Promise<GraceUsage> {
  await rt.observations.flush();
  const limit = Math.min(Math.max(options.limit ?? 20, 1), 200);
  const [rows, totals] = await guard(() =>
    Promise.all([
      rt.prisma.keyClient.findMany({
        // Not the row that sums the clients past `observations.maxClientsPerKey`.
        where: { keyId: key.id, address: { not: "" } },
        orderBy: { lastSeenAt: "desc" },
        take: limit,
      }),
      rt.prisma.keyClient.aggregate({
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
export async function suggestScopes(
  rt: Runtime,
  key: ApiKeyInfo,
  options: { since?: Date } = {},
): Promise<ScopeSuggestion> {
  await rt.observations.flush();
  const rows = await guard(() =>
    rt.prisma.keyScopeUse.findMany({
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
