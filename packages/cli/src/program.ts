/** The `flux` command tree (commander) and `run()`, which maps every outcome to an exit code. */
import { Command, CommanderError } from "commander";
import { describeError, EXIT, exitCodeOf } from "./cli-errors.js";
import { registerAudit } from "./commands/audit.js";
import { registerKeys } from "./commands/keys.js";
import { registerMigrate } from "./commands/migrate.js";
import { registerOrgs } from "./commands/orgs.js";
import { registerPlans } from "./commands/plans.js";
import { registerPortal } from "./commands/portal.js";
import { registerUsage } from "./commands/usage.js";
import { type CliIo, processIo } from "./io.js";

const VERSION = "0.1.0";

const CONNECTION_HELP = `
Connection (flags win over the environment):
  --database <url> / DATABASE_URL      PostgreSQL; --schema / FLUX_DATABASE_SCHEMA picks a schema
  --direct-url <url> / DIRECT_URL      the server itself when --database is a pooler (PgBouncer):
                                       migrations run over it
  --pglite <folder>                    the embedded store in a folder (one process at a time)
  --redis <url> / REDIS_URL            so other instances drop cached keys at once on revoke/rotate
  --key-prefix / FLUX_KEY_PREFIX       must match your app's keyPrefix (default flux)
  FLUX_PEPPER                          must match your app's pepper (environment only, never a flag)

Exit codes: 0 success, 1 usage error (bad flags or input), 2 not found or refused,
3 database or Redis unavailable. Errors are one line on stderr; --debug adds details.
`;

export function createProgram(io: CliIo = processIo()): Command {
  const program = new Command("flux")
    .description(
      "Manage Flux Keys API keys, orgs, plans, usage and the portal from a terminal or a CI pipeline.",
    )
    .version(VERSION, "-V, --version")
    .option("--database <url>", "PostgreSQL connection URL (default: $DATABASE_URL)")
    .option(
      "--direct-url <url>",
      "direct PostgreSQL URL when --database is a transaction pooler (default: $DIRECT_URL)",
    )
    .option(
      "--schema <name>",
      "PostgreSQL schema (default: $FLUX_DATABASE_SCHEMA, else the URL's search path)",
    )
    .option("--pglite <folder>", "embedded PGlite store in this folder")
    .option("--redis <url>", "Redis URL for cross-instance cache invalidation (default: $REDIS_URL)")
    .option("--no-redis", "do not connect to Redis even if REDIS_URL is set")
    .option(
      "--key-prefix <prefix>",
      "key prefix, as configured in your app (default: $FLUX_KEY_PREFIX, else flux)",
    )
    .option("--actor <id>", "who to record in the audit log (default: $FLUX_ACTOR, else the OS user)")
    .option("--json", "machine-readable output on stdout")
    .option("-q, --quiet", "only the essential result on stdout (e.g. just the secret), no notes")
    .option("--debug", "stack traces and store logs on stderr")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Commander's own errors (unknown option, missing argument): one line, prefixed like ours.
      outputError: (text, write) => write(`flux: ${text.trim().replace(/^error: /, "")} (see --help)\n`),
    })
    .addHelpText("after", CONNECTION_HELP);

  registerMigrate(program, io);
  registerPlans(program, io);
  registerOrgs(program, io);
  registerKeys(program, io);
  registerUsage(program, io);
  registerAudit(program, io);
  registerPortal(program, io);
  return program;
}

/** Runs `flux` with these arguments (without `node` and the script) and returns the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with exit code 0; commander has printed everything else already.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    io.stderr.write(`flux: ${describeError(error)}\n`);
    if (argv.includes("--debug") && error instanceof Error && error.stack) {
      io.stderr.write(`${error.stack}\n`);
    }
    return exitCodeOf(error);
  }
}
