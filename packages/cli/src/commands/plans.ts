import type { Quota, RateLimitWindow } from "@flux-keys/core";
import type { Command } from "commander";
import { action, examples } from "../command.js";
import type { CliIo } from "../io.js";
import { planRows } from "../output.js";
import { collectList, quota, rateLimit } from "../parse.js";

interface UpsertFlags {
  name: string;
  scope?: string[];
  rateLimit?: RateLimitWindow[];
  quota?: Quota;
  entitlement?: string[];
}

export function registerPlans(program: Command, io: CliIo): void {
  const plans = program.command("plans").description("Create, replace and list plans.");

  plans
    .command("upsert")
    .description(
      "Create a plan, or replace it: the plan becomes exactly what the flags say (omitted lists become empty).",
    )
    .argument("<id>", "plan id (letters, digits, _ . : -)")
    .requiredOption("--name <name>", "display name")
    .option(
      "--scope <scopes>",
      "scope keys of this plan may hold (repeatable, comma-separated; none: unrestricted)",
      collectList,
    )
    .option(
      "--rate-limit <window>",
      "per-key window NAME=LIMIT/WINDOW, or pooled per org NAME=LIMIT/WINDOW/org (repeatable)",
      rateLimit,
    )
    .option("--quota <quota>", "per-key quota LIMIT/day|month|total", quota)
    .option(
      "--entitlement <names>",
      "feature included in the plan (repeatable, comma-separated)",
      collectList,
    )
    .addHelpText(
      "after",
      examples(
        'flux plans upsert pro --name "Pro" --scope "read:*,write:events" --rate-limit burst=10/1s --rate-limit sustained=1000/1h --quota 100000/month --entitlement bulk_export',
        'flux plans upsert free --name "Free" --rate-limit team=100/1m/org --json',
      ),
    )
    .action(
      action<UpsertFlags>(io, async (session, flags, [id]) => {
        const flux = await session.flux();
        const plan = await flux.plans.upsert(
          {
            id: id!,
            name: flags.name,
            scopes: flags.scope ?? [],
            rateLimits: flags.rateLimit ?? [],
            quota: flags.quota ?? null,
            entitlements: flags.entitlement ?? [],
          },
          { actor: session.actor() },
        );
        if (session.json) return session.printJson(plan);
        session.out(planRows([plan]));
      }),
    );

  plans
    .command("list")
    .description("List every plan.")
    .addHelpText("after", examples("flux plans list", "flux plans list --json | jq '.[].id'"))
    .action(
      action(io, async (session) => {
        const flux = await session.flux();
        const all = await flux.plans.list();
        if (session.json) return session.printJson(all);
        if (all.length === 0) return session.note("No plans yet: create one with `flux plans upsert`.");
        session.out(planRows(all));
      }),
    );
}
