/**
 * What every command shares: the global flags, the connection (opened lazily, once), the actor
 * recorded in the audit trail, and output (stdout for results, stderr for everything else).
 */
import { userInfo } from "node:os";
import {
  type Actor,
  createFlux,
  type Flux,
  FluxError,
  type FluxOptions,
  loadMigrations,
} from "@flux-keys/core";
import { adminAccess } from "@flux-keys/core/admin";
import yoctoSpinner from "yocto-spinner";
import { RefusedError, UsageError } from "./cli-errors.js";
import type { CliIo } from "./io.js";
import { printableLines } from "./terminal.js";

export interface GlobalFlags {
  database?: string;
  directUrl?: string;
  schema?: string;
  pglite?: string;
  redis?: string | false;
  keyPrefix?: string;
  actor?: string;
  json?: boolean;
  quiet?: boolean;
  debug?: boolean;
}

/** Where to connect, from the flags first, then the environment. */
export function fluxOptions(flags: GlobalFlags, env: NodeJS.ProcessEnv): FluxOptions {
  const options: FluxOptions = { migrate: false };
  const url = flags.database ?? env.DATABASE_URL;
  if (flags.pglite !== undefined) {
    if (flags.database !== undefined) throw new UsageError("Pass either --database or --pglite, not both.");
    options.database = { pglite: flags.pglite };
  } else if (url) {
    const schema = flags.schema ?? env.FLUX_DATABASE_SCHEMA;
    const directUrl = flags.directUrl ?? env.DIRECT_URL;
    options.database = {
      url,
      poolSize: 2,
      ...(schema ? { schema } : {}),
      ...(directUrl ? { directUrl } : {}),
    };
  } else {
    throw new UsageError(
      "No database: pass --database <url> (or set DATABASE_URL), or --pglite <folder> for the embedded store.",
    );
  }
  if (flags.directUrl !== undefined && flags.pglite !== undefined) {
    throw new UsageError("--direct-url applies to --database, not to --pglite.");
  }
  if (flags.schema !== undefined && flags.pglite !== undefined) {
    throw new UsageError("--schema applies to --database, not to --pglite.");
  }
  const redis = flags.redis === false ? undefined : (flags.redis ?? env.REDIS_URL);
  options.redis = redis ? { url: redis } : null;
  const keyPrefix = flags.keyPrefix ?? env.FLUX_KEY_PREFIX;
  if (keyPrefix) options.keyPrefix = keyPrefix;
  // Only from the environment: a flag would show the pepper in the process list and shell history.
  if (env.FLUX_PEPPER) options.pepper = env.FLUX_PEPPER;
  return options;
}

export class Session {
  private opened: Promise<Flux> | undefined;

  constructor(
    readonly io: CliIo,
    readonly flags: GlobalFlags,
  ) {}

  get json(): boolean {
    return this.flags.json === true;
  }

  /** Changes made from the CLI are recorded as `{ type: 'admin', id: <--actor, FLUX_ACTOR or OS user> }`. */
  actor(): Actor {
    return { type: "admin", id: this.flags.actor ?? this.io.env.FLUX_ACTOR ?? osUser(this.io.env) };
  }

  /** Opens the store without migrating; `requireMigrated` refuses a database with pending migrations. */
  flux(options: { requireMigrated?: boolean } = {}): Promise<Flux> {
    this.opened ??= this.open(options.requireMigrated ?? true);
    return this.opened;
  }

  private async open(requireMigrated: boolean): Promise<Flux> {
    const options = fluxOptions(this.flags, this.io.env);
    if (this.flags.debug) options.logger = stderrLogger(this.io);
    const flux = await createFlux(options);
    if (requireMigrated) {
      try {
        await assertMigrated(flux);
      } catch (error) {
        await flux.close();
        throw error;
      }
    }
    return flux;
  }

  async close(): Promise<void> {
    if (this.opened === undefined) return;
    const flux = await this.opened.catch(() => undefined);
    await flux?.close();
  }

  /** A result line on stdout, for people: control characters escaped (JSON goes through printJson). */
  out(text = ""): void {
    this.io.stdout.write(`${printableLines(text)}\n`);
  }

  /** A result as JSON on stdout (dates as ISO strings). */
  printJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A note for people on stderr (hints, confirmations); silent with --quiet or --json. */
  note(text: string): void {
    if (!this.flags.quiet && !this.json) this.io.stderr.write(`${printableLines(text)}\n`);
  }

  /**
   * Runs a long operation with a spinner on stderr when it is a terminal; nothing at all when
   * piped, with --quiet or --json.
   */
  async progress<T>(text: string, operation: () => Promise<T>): Promise<T> {
    const stream = this.io.stderr;
    const interactive = stream.isTTY === true && !this.flags.quiet && !this.json && !this.io.env.CI;
    if (!interactive) return operation();
    const spinner = yoctoSpinner({ text, stream: stream as NodeJS.WriteStream }).start();
    try {
      const result = await operation();
      spinner.stop();
      return result;
    } catch (error) {
      spinner.stop();
      throw error;
    }
  }
}

/** Refuses to work on a schema that `flux migrate` has not brought up to date. */
async function assertMigrated(flux: Flux): Promise<void> {
  const expected = (await loadMigrations()).map((migration) => migration.id);
  let applied: Set<string>;
  try {
    applied = await adminAccess(flux).driver.withSession(async (session) => {
      const [table] = await session.query<{ t: string | null }>(
        "SELECT to_regclass('flux_migrations')::text AS t",
      );
      if (!table?.t) return new Set<string>();
      const rows = await session.query<{ id: string }>('SELECT "id" FROM "flux_migrations"');
      return new Set(rows.map((row) => row.id));
    });
  } catch {
    // Driver text may name hosts: report the outage by its code only.
    throw new FluxError("store_unavailable");
  }
  const pending = expected.filter((id) => !applied.has(id));
  if (pending.length > 0) {
    throw new RefusedError(
      `The database has ${pending.length} pending migration${pending.length === 1 ? "" : "s"} (${pending.join(", ")}): run \`flux migrate\` first.`,
    );
  }
}

function osUser(env: NodeJS.ProcessEnv): string {
  try {
    return userInfo().username;
  } catch {
    return env.USER ?? env.USERNAME ?? "unknown";
  }
}

function stderrLogger(io: CliIo) {
  const write = (level: string) => (fields: Record<string, unknown>, message?: string) => {
    io.stderr.write(`[${level}] ${message ?? ""} ${JSON.stringify(fields)}\n`);
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}
