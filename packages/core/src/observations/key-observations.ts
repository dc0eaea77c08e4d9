/**
 * What adapters observe about keys in use, buffered in memory and written in batches (no I/O on
 * the request path), like usage:
 * - the clients (address, user agent) still using a key during its rotation grace;
 * - the scopes each key actually exercised (the scopes its routes required).
 * Both maps are bounded; what does not fit until the next flush is dropped and counted.
 * Clients are also bounded per key, in memory and in `flux_key_clients`: the most recent
 * `maxClientsPerKey` are kept, older ones are folded into one summary row per key (address and
 * user agent empty, which no observed client has), so the key's total calls stay exact.
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
/** The summary row's address and user agent: observed clients always have an address. */
const OLDER = "";

/** The clients of one key waiting for the flush, least recently seen first (a Map keeps order). */
interface KeyClients {
  byClient: Map<string, ClientEntry>;
  /** Clients pushed out of `byClient` by newer ones, summed. */
  older: ClientEntry | null;
}

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

/**
 * After the upsert (a separate statement: a CTE does not see its siblings' rows): of each key just
 * written, every client past the `$2` most recent is deleted and added to the key's summary row.
 */
const PRUNE = `
WITH "ranked" AS (
  SELECT "key_id", "address", "user_agent",
         row_number() OVER (PARTITION BY "key_id" ORDER BY "last_seen_at" DESC, "address", "user_agent") AS "rank"
    FROM "flux_key_clients"
   WHERE "key_id" = ANY($1::text[]) AND "address" <> ''
), "gone" AS (
  DELETE FROM "flux_key_clients" AS t USING "ranked" AS r
   WHERE r."rank" > $2 AND t."key_id" = r."key_id" AND t."address" = r."address" AND t."user_agent" = r."user_agent"
  RETURNING t.*
)
INSERT INTO "flux_key_clients" AS t ("key_id", "address", "user_agent", "first_seen_at", "last_seen_at", "calls")
SELECT "key_id", '', '', min("first_seen_at"), max("last_seen_at"), sum("calls")::bigint
  FROM "gone" GROUP BY "key_id" ORDER BY "key_id"
ON CONFLICT ("key_id", "address", "user_agent") DO UPDATE SET
  "first_seen_at" = LEAST(t."first_seen_at", EXCLUDED."first_seen_at"),
  "last_seen_at" = GREATEST(t."last_seen_at", EXCLUDED."last_seen_at"),
  "calls" = t."calls" + EXCLUDED."calls"`;

export class KeyObservations {
  /** keyId -> its clients; `clientCount` counts entries across keys (summary entries included). */
  private clients = new Map<string, KeyClients>();
  private clientCount = 0;
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
    /** Clients kept per key, the most recent. */
    private readonly maxClientsPerKey = 100,
  ) {}

  /** A client of a key in its rotation grace. */
  noteClient(keyId: string, address: string | null | undefined, userAgent: string | null | undefined): void {
    const addr = address || "unknown";
    const agent = (userAgent || "").slice(0, MAX_USER_AGENT);
    const at = this.now();
    this.addClient({ keyId, address: addr, userAgent: agent, first: at, last: at, calls: 1 });
  }

  /** Adds (or merges) one client entry; the key's least recent client past the bound goes to its summary. */
  private addClient(entry: ClientEntry): void {
    let mine = this.clients.get(entry.keyId);
    if (mine === undefined) {
      if (this.clientCount >= MAX_ENTRIES) {
        this.dropped += entry.calls;
        return;
      }
      mine = { byClient: new Map(), older: null };
      this.clients.set(entry.keyId, mine);
    }
    if (entry.address === OLDER) {
      this.mergeOlder(mine, entry);
      return;
    }
    const id = `${entry.address}\u0000${entry.userAgent}`;
    const current = mine.byClient.get(id);
    if (current !== undefined) {
      current.first = Math.min(current.first, entry.first);
      current.last = Math.max(current.last, entry.last);
      current.calls += entry.calls;
      // Most recently seen last: the first entry is the one to push out.
      mine.byClient.delete(id);
      mine.byClient.set(id, current);
      return;
    }
    if (mine.byClient.size >= this.maxClientsPerKey) {
      const [oldestId, oldest] = mine.byClient.entries().next().value as [string, ClientEntry];
      mine.byClient.delete(oldestId);
      this.clientCount--;
      this.mergeOlder(mine, oldest);
    }
    if (this.clientCount >= MAX_ENTRIES) {
      this.dropped += entry.calls;
      return;
    }
    mine.byClient.set(id, entry);
    this.clientCount++;
  }

  private mergeOlder(mine: KeyClients, entry: ClientEntry): void {
    if (mine.older === null) {
      if (this.clientCount >= MAX_ENTRIES) {
        this.dropped += entry.calls;
        return;
      }
      mine.older = { ...entry, address: OLDER, userAgent: OLDER };
      this.clientCount++;
      return;
    }
    mine.older.first = Math.min(mine.older.first, entry.first);
    mine.older.last = Math.max(mine.older.last, entry.last);
    mine.older.calls += entry.calls;
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
    if (this.clientCount === 0 && this.scopeCount === 0) return;
    const clients = this.clients;
    const scopes = new Map<string, ScopeEntry>();
    for (const byScope of this.scopes.values()) {
      for (const entry of byScope.values()) scopes.set(`${entry.keyId}\u0000${entry.scope}`, entry);
    }
    this.clients = new Map();
    this.clientCount = 0;
    this.scopes = new Map();
    this.scopeCount = 0;
    const c: ClientEntry[] = [];
    for (const mine of clients.values()) {
      c.push(...mine.byClient.values());
      if (mine.older !== null) c.push(mine.older);
    }
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
      for (const entry of c) this.addClient(entry);
      for (const entry of scopes.values()) this.noteScopeEntry(entry);
      return;
    }
    if (clients.size === 0) return;
    try {
      await this.driver.withSession((session) =>
        session.query(PRUNE, [[...clients.keys()], this.maxClientsPerKey]),
      );
    } catch {
      // The rows are written; the next flush of these keys prunes them.
      this.logger.warn?.({ event: "flux.observations.prune_failed" }, "key clients pruned at the next flush");
    }
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush().catch(() => {});
  }
}
