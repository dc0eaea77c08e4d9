/**
 * Opens the one Prisma client Flux Keys uses, on embedded PGlite or on PostgreSQL, plus a raw SQL
 * handle for the migrator. Nothing here ever puts a connection string into an error.
 */
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { FluxError } from "./errors.js";
import { PrismaClient } from "./generated/prisma/client.js";

export type { PrismaClient };

/** Raw SQL for the migrator, the same on both drivers. */
export interface SqlSession {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  exec(sql: string): Promise<void>;
}

export interface SqlDriver {
  /** Runs `fn` on one connection (PGlite has only one). */
  withSession<T>(fn: (session: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface Database {
  kind: "pglite" | "postgres";
  prisma: PrismaClient;
  driver: SqlDriver;
  /**
   * What needs a server session of its own (the migrator's advisory lock and DDL): one connection
   * per `withSession` on `directUrl` when `url` goes through a transaction pooler, else `driver`.
   */
  sessionDriver: SqlDriver;
  close(): Promise<void>;
}

export type DatabaseConfig =
  | { kind: "pglite"; dataDir: string | undefined }
  | {
      kind: "postgres";
      url: string;
      schema: string | undefined;
      poolSize: number;
      /** A direct connection for sessions of their own (LISTEN), when `url` is a pooler. */
      directUrl?: string;
    };

export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  if (config.kind === "pglite") {
    const pglite = new PGlite(config.dataDir);
    await pglite.waitReady;
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
    const driver: SqlDriver = {
      withSession: (fn) =>
        fn({
          query: async (sql, params) => (await pglite.query(sql, params)).rows as never,
          exec: async (sql) => {
            await pglite.exec(sql);
          },
        }),
      close: async () => {},
    };
    return {
      kind: "pglite",
      prisma,
      driver,
      sessionDriver: driver,
      close: async () => {
        await prisma.$disconnect();
        await pglite.close();
      },
    };
  }

  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolSize,
    // Fail fast instead of queueing forever when the server is gone.
    connectionTimeoutMillis: 5_000,
    ...(config.schema ? { options: `-c search_path=${quoteIdent(config.schema)}` } : {}),
  });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on("error", () => {});
  const adapter = new PrismaPg(pool, config.schema ? { schema: config.schema } : undefined);
  const prisma = new PrismaClient({ adapter });
  const driver: SqlDriver = {
    withSession: async (fn) => {
      const client = await pool.connect();
      // A checked-out client whose server goes away emits 'error' besides failing its query; with
      // no listener (the pool's is detached while checked out) that would crash the process.
      client.on("error", ignoreError);
      try {
        return await fn(sessionOf(client));
      } finally {
        client.removeListener("error", ignoreError);
        // A client that lost its connection is not queryable: the pool discards it on release.
        client.release();
      }
    },
    close: async () => {},
  };
  return {
    kind: "postgres",
    prisma,
    driver,
    sessionDriver: config.directUrl === undefined ? driver : directDriver(config.directUrl, config.schema),
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

function ignoreError(): void {}

function sessionOf(client: pg.ClientBase): SqlSession {
  return {
    query: async (sql, params) => (await client.query(sql, params)).rows as never,
    exec: async (sql) => {
      await client.query(sql);
    },
  };
}

/** A connection of its own per session, straight to the server (no pooler in between). */
function directDriver(url: string, schema: string | undefined): SqlDriver {
  return {
    withSession: async (fn) => {
      const client = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: 5_000,
        ...(schema ? { options: `-c search_path=${quoteIdent(schema)}` } : {}),
      });
      client.on("error", ignoreError);
      await client.connect();
      try {
        return await fn(sessionOf(client));
      } finally {
        await client.end().catch(ignoreError);
      }
    },
    close: async () => {},
  };
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Prisma's error codes we translate into domain errors; everything else is an outage. */
const UNIQUE_VIOLATION = "P2002";
const RECORD_NOT_FOUND = "P2025";

export function prismaCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

export function isUniqueViolation(error: unknown): boolean {
  return prismaCode(error) === UNIQUE_VIOLATION || prismaCode(error) === "23505";
}

/**
 * Maps anything a store throws to a FluxError. Known domain errors pass through; everything else
 * becomes `store_unavailable` with no driver text (which may contain hosts, SQL or parameters).
 */
export function toStoreError(error: unknown): FluxError {
  if (error instanceof FluxError) return error;
  if (prismaCode(error) === RECORD_NOT_FOUND) return new FluxError("not_found");
  return new FluxError("store_unavailable");
}

/** Runs a store operation, translating failures (see `toStoreError`). */
export async function guard<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw toStoreError(error);
  }
}
