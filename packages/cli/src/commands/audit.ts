import type { AuditEvent } from "@flux-keys/core";
import type { Command } from "commander";
import { action, examples, type PageFlags, paged } from "../command.js";
import type { CliIo } from "../io.js";
import { table, when } from "../output.js";
import { positiveInt, timeArg } from "../parse.js";

interface AuditFlags extends PageFlags {
  org?: string;
  key?: string;
  from?: Date;
  to?: Date;
}

const time = timeArg(Date.now);

function actor(event: AuditEvent): string {
  return `${event.actor.type}${event.actor.id ? `:${event.actor.id}` : ""}${event.actor.ip ? ` (${event.actor.ip})` : ""}`;
}

function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function registerAudit(program: Command, io: CliIo): void {
  program
    .command("audit")
    .description("Who changed what, newest first: key, org and plan lifecycle events.")
    .option("--org <orgId>", "only this org's events")
    .option("--key <keyId>", "only this key's events")
    .option("--from <when>", "from: ISO date, or an age such as 7d", time)
    .option("--to <when>", "until: ISO date or now", time)
    .option("--limit <n>", "page size (default 50)", positiveInt(500))
    .option("--cursor <cursor>", "continue after a previous page")
    .option("--all", "every page")
    .addHelpText(
      "after",
      examples("flux audit --org acme", "flux audit --org acme --key key_8fK2… --from 30d --all --json"),
    )
    .action(
      action<AuditFlags>(io, async (session, flags) => {
        const flux = await session.flux();
        const page = await paged(session, flags, (cursor, limit) =>
          flux.audit.list({
            cursor,
            ...(limit ? { limit } : {}),
            ...(flags.org !== undefined ? { orgId: flags.org } : {}),
            ...(flags.key !== undefined ? { keyId: flags.key } : {}),
            ...(flags.from !== undefined ? { from: flags.from } : {}),
            ...(flags.to !== undefined ? { to: flags.to } : {}),
          }),
        );
        if (session.json) return session.printJson(page);
        if (page.items.length === 0) return session.note("No audit events.");
        session.out(
          table(
            ["TIME", "ACTION", "ACTOR", "ORG", "KEY", "DETAILS"],
            page.items.map((e) => [
              when(e.at),
              e.action,
              actor(e),
              e.orgId ?? "-",
              e.keyId ?? "-",
              clip(JSON.stringify(e.details)),
            ]),
          ),
        );
      }),
    );
}
