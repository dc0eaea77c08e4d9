/**
 * What adapters observe about keys in use, buffered in memory and written in batches (no I/O on
 * the request path), like usage:
 * - the clients (address, user agent) still using a key during its rotation grace;
 * - the scopes each key actually exercised (the scopes its routes required).
 * Both maps are bounded; what does not fit until the next flush is dropped and counted.
 */
import type { SqlDriver } from "../database.js";
import type { Logger } from "../options.js";

interface ClientEntry {
  keyId: string;
  address: string;
  userAgent: string;
  first: number;
  last: number;
  calls: number;
}

interface ScopeEntry {
  keyId: string;
  scope: string;
  first: number;
  last: number;
  calls: number;
}

const MAX_ENTRIES = 10_000;
const MAX_USER_AGENT = 256;

/** Both upserts in one statement: atomic, so a failed flush can be retried whole. */
const UPSERT = `
WITH "clients" AS (
  INSERT INTO "flux_key_clients" AS t ("key_id", "address", "user_agent", "first_seen_at", "last_seen_at", "calls")
  SELECT r."key_id", r."address", r."user_agent", to_timestamp(r."first" / 1000), to_timestamp(r."last" / 1000), r."calls"
    FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::bigint[])
      AS r("key_id", "address", "user_agent", "first", "last", "calls")
   ORDER BY 1, 2, 3
  ON CONFLICT ("key_id", "address", "user_agent") DO UPDATE SET
    "first_seen_at" = LEAST(t."first_seen_at", EXCLUDED."first_seen_at"),
    "last_seen_at" = GREATEST(t."last_seen_at", EXCLUDED."last_seen_at"),
    "calls" = t."calls" + EXCLUDED."calls"
  RETURNING 1
), "scopes" AS (
  INSERT INTO "flux_key_scope_uses" AS t ("key_id", "scope", "first_used_at", "last_used_at", "calls")
  SELECT r."key_id", r."scope", to_timestamp(r."first" / 1000), to_timestamp(r."last" / 1000), r."calls"
    FROM unnest($7::text[], $8::text[], $9::float8[], $10::float8[], $11::bigint[])
      AS r("key_id", "scope", "first", "last", "calls")
   ORDER BY 1, 2
  ON CONFLICT ("key_id", "scope") DO UPDATE SET
    "first_used_at" = LEAST(t."first_used_at", EXCLUDED."first_used_at"),
    "last_used_at" = GREATEST(t."last_used_at", EXCLUDED."last_used_at"),
    "calls" = t."calls" + EXCLUDED."calls"
  RETURNING 1
)
SELECT (SELECT count(*) FROM "clients")::int AS "clients", (SELECT count(*) FROM "scopes")::int AS "scopes"`;

export class KeyObservations {
  private clients = new Map<string, ClientEntry>();
  /** keyId -> scope -> entry: no string is built per request for a key and scope already seen. */
  private scopes = new Map<string, Map<string, ScopeEntry>>();
  private scopeCount = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  dropped = 0;

  constructor(
    private readonly driver: SqlDriver,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  /** A client of a key in its rotation grace. */
  noteClient(keyId: string, address: string | null | undefined, userAgent: string | null | undefined): void {
    const addr = address || "unknown";
    const agent = (userAgent || "").slice(0, MAX_USER_AGENT);
    const id = `${keyId}\u0000${addr}\u0000${agent}`;
    const at = this.now();
    const entry = this.clients.get(id);
    if (entry !== undefined) {
      entry.last = at;
      entry.calls++;
    } else if (this.clients.size < MAX_ENTRIES) {
      this.clients.set(id, { keyId, address: addr, userAgent: agent, first: at, last: at, calls: 1 });
    } else {
      this.dropped++;
    }
  }

  /** Scopes a request of this key exercised. */
  noteScopes(keyId: string, scopes: readonly string[]): void {
    const at = this.now();
    let byScope = this.scopes.get(keyId);
    if (byScope === undefined) {
      byScope = new Map();
      this.scopes.set(keyId, byScope);
    }
    for (const scope of scopes) {
      const entry = byScope.get(scope);
      if (entry !== undefined) {
        entry.last = at;
        entry.calls++;
      } else if (this.scopeCount < MAX_ENTRIES) {
        byScope.set(scope, { keyId, scope, first: at, last: at, calls: 1 });
        this.scopeCount++;
      } else {
        this.dropped++;
      }
    }
  }

  /** Puts back a scope entry a failed flush took (merged with what came since). */
  private noteScopeEntry(entry: ScopeEntry): void {
    let byScope = this.scopes.get(entry.keyId);
    if (byScope === undefined) {
      byScope = new Map();
      this.scopes.set(entry.keyId, byScope);
    }
    const current = byScope.get(entry.scope);
    if (current !== undefined) {
      current.first = Math.min(current.first, entry.first);
      current.last = Math.max(current.last, entry.last);
      current.calls += entry.calls;
    } else if (this.scopeCount < MAX_ENTRIES) {
      byScope.set(entry.scope, entry);
      this.scopeCount++;
    } else {
      this.dropped += entry.calls;
    }
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.flush().catch(() => {});
    }, intervalMs);
    this.timer.unref();
  }

  /** Writes what was observed; on failure keeps it (merged with what came since) for the next try. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.clients.size === 0 && this.scopeCount === 0) return;
    const clients = this.clients;
    const scopes = new Map<string, ScopeEntry>();
    for (const byScope of this.scopes.values()) {
      for (const entry of byScope.values()) scopes.set(`${entry.keyId}\u0000${entry.scope}`, entry);
    }
    this.clients = new Map();
    this.scopes = new Map();
    this.scopeCount = 0;
    const c = [...clients.values()];
    const sc = [...scopes.values()];
    try {
      await this.driver.withSession((session) =>
        session.query(UPSERT, [
          c.map((r) => r.keyId),
          c.map((r) => r.address),
          c.map((r) => r.userAgent),
          c.map((r) => r.first),
          c.map((r) => r.last),
          c.map((r) => r.calls),
          sc.map((r) => r.keyId),
          sc.map((r) => r.scope),
          sc.map((r) => r.first),
          sc.map((r) => r.last),
          sc.map((r) => r.calls),
        ]),
      );
    } catch {
      this.logger.warn?.(
        { event: "flux.observations.flush_failed" },
        "key observations kept for the next flush",
      );
      // One statement: it failed whole, so everything goes back (merged with what came since).
      for (const [id, entry] of clients) merge(this.clients, id, entry, MAX_ENTRIES, this);
      for (const entry of scopes.values()) this.noteScopeEntry(entry);
    }
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush().catch(() => {});
  }
}

function merge<T extends { first: number; last: number; calls: number }>(
  into: Map<string, T>,
  id: string,
  entry: T,
  max: number,
  owner: { dropped: number },
): void {
  const current = into.get(id);
  if (current !== undefined) {
    current.first = Math.min(current.first, entry.first);
    current.last = Math.max(current.last, entry.last);
    current.calls += entry.calls;
  } else if (into.size < max) {
    into.set(id, entry);
  } else {
    owner.dropped += entry.calls;
  }
}
