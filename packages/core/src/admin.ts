/**
 * `@flux-keys/core/admin`: what operator tooling (the `flux` CLI, migration jobs) needs beyond
 * the public API, and nothing more: the store's SQL sessions, to migrate and to check migrations.
 */
import type { Flux } from "./flux.js";
import { type AdminDependencies, seamsOf } from "./seams.js";

export type { SqlDriver, SqlSession } from "./database.js";
export { loadMigrations, type MigrationReport, migrate } from "./migrator.js";
export type { AdminDependencies } from "./seams.js";

/** The store of a Flux instance, for operator tooling: its SQL drivers and its schema. */
export function adminAccess(flux: Flux): AdminDependencies {
  return seamsOf(flux).admin;
}
