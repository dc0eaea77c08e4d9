/**
 * Applies the SQL files in ../migrations in order, each once, recorded in `flux_migrations`.
 * Safe to run twice and from two processes at once: the whole run holds a transaction-scoped
 * advisory lock, and each file is applied in the same transaction that records it.
 *
 * Hand-written on purpose: `prisma migrate` needs a downloaded schema engine and cannot drive PGlite,
 * and the general migrators (umzug, node-pg-migrate) do not run on our SqlDriver over both drivers.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SqlDriver } from "./database.js";
import { FluxConfigError } from "./errors.js";

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "migrations");
/** Arbitrary constant identifying Flux Keys' migration lock among advisory locks. */
const LOCK_ID = 0x466c7578; // "Flux"

export interface Migration {
  id: string;
  sql: string;
  checksum: string;
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: string[];
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith(".sql")).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(join(dir, file), "utf8");
      return {
        id: file.replace(/\.sql$/, ""),
        sql,
        checksum: createHash("sha256").update(sql).digest("hex"),
      };
    }),
  );
}

export async function migrate(driver: SqlDriver, dir = MIGRATIONS_DIR): Promise<MigrationReport> {
  const migrations = await loadMigrations(dir);
  return driver.withSession(async (session) => {
    await session.exec("BEGIN");
    try {
      await session.query("SELECT pg_advisory_xact_lock($1)", [LOCK_ID]);
      await session.exec(`CREATE TABLE IF NOT EXISTS "flux_migrations" (
        "id" TEXT PRIMARY KEY,
        "checksum" TEXT NOT NULL,
        "applied_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
      )`);
      const rows = await session.query<{ id: string; checksum: string }>(
        'SELECT "id", "checksum" FROM "flux_migrations"',
      );
      const done = new Map(rows.map((row) => [row.id, row.checksum]));
      const report: MigrationReport = { applied: [], alreadyApplied: [] };
      for (const migration of migrations) {
        const checksum = done.get(migration.id);
        if (checksum !== undefined) {
          if (checksum !== migration.checksum) {
            throw new FluxConfigError(
              "migration_failed",
              `Migration ${migration.id} was changed after it was applied.`,
            );
          }
          report.alreadyApplied.push(migration.id);
          continue;
        }
        await session.exec(migration.sql);
        await session.query('INSERT INTO "flux_migrations" ("id", "checksum") VALUES ($1, $2)', [
          migration.id,
          migration.checksum,
        ]);
        report.applied.push(migration.id);
      }
      await session.exec("COMMIT");
      return report;
    } catch (error) {
      await session.exec("ROLLBACK").catch(() => {});
      if (error instanceof FluxConfigError) throw error;
      throw new FluxConfigError(
        "migration_failed",
        `Applying migrations failed (${describeSqlError(error)}).`,
      );
    }
  });
}

/** SQLSTATE and message of a server-side SQL error, without connection details. */
function describeSqlError(error: unknown): string {
  if (typeof error === "object" && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && typeof message === "string") {
      return `${code}: ${message}`;
    }
  }
  return "database unreachable or refused the connection";
}
