import { FluxError } from "@flux-keys/core";
import { adminAccess, migrate } from "@flux-keys/core/admin";
import type { Command } from "commander";
import { action, examples } from "../command.js";
import type { CliIo } from "../io.js";

type Driver = Parameters<typeof migrate>[0];

async function createSchema(driver: Driver, schema: string): Promise<void> {
  try {
    await driver.withSession((session) =>
      session.exec(`CREATE SCHEMA IF NOT EXISTS "${schema.replaceAll('"', '""')}"`),
    );
  } catch {
    // Driver text can name hosts: report by code only. A refusal (no privilege) surfaces in migrate.
    throw new FluxError("store_unavailable", { detail: "The schema could not be created." });
  }
}

export function registerMigrate(program: Command, io: CliIo): void {
  program
    .command("migrate")
    .description("Apply the SQL migrations that are not applied yet (safe to repeat).")
    .addHelpText(
      "after",
      examples(
        "flux migrate --database postgresql://flux@db.internal/flux",
        "flux migrate --pglite ./data",
        "flux migrate --json   # { applied: [...], alreadyApplied: [...] }",
      ),
    )
    .action(
      action(io, async (session) => {
        const flux = await session.flux({ requireMigrated: false });
        const { sessionDriver: driver, schema } = adminAccess(flux);
        const report = await session.progress("Applying migrations…", async () => {
          // Like `prisma migrate`, create the schema the tables go into when it does not exist yet.
          if (schema !== undefined) await createSchema(driver, schema);
          return migrate(driver);
        });
        if (session.json) return session.printJson(report);
        if (report.applied.length === 0) {
          session.out(`Database up to date (${report.alreadyApplied.length} migrations applied earlier).`);
        } else {
          session.out(`Applied ${report.applied.length} migration${report.applied.length === 1 ? "" : "s"}:`);
          for (const id of report.applied) session.out(`  ${id}`);
          if (report.alreadyApplied.length > 0) {
            session.out(`(${report.alreadyApplied.length} applied earlier.)`);
          }
        }
      }),
    );
}
