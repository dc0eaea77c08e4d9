import type { OrgChanges } from "@flux-keys/core";
import type { Command } from "commander";
import { UsageError } from "../cli-errors.js";
import { action, examples, type PageFlags, paged } from "../command.js";
import type { CliIo } from "../io.js";
import { details, orgRows, table, when } from "../output.js";
import { futureArg, jsonObject, positiveInt } from "../parse.js";

interface CreateFlags {
  id?: string;
  name: string;
  plan?: string;
  metadata?: Record<string, unknown>;
  stripeCustomer?: string;
}

interface UpdateFlags {
  name?: string;
  plan?: string | false;
  metadata?: Record<string, unknown>;
  stripeCustomer?: string | false;
}

interface EntitleFlags {
  withdraw?: boolean;
  until?: Date;
}

export function registerOrgs(program: Command, io: CliIo): void {
  const orgs = program.command("orgs").description("Create, change, list and inspect organizations.");

  orgs
    .command("create")
    .description("Create an organization (the customer that owns keys).")
    .option("--id <id>", "org id, e.g. your customer's id (default: generated)")
    .requiredOption("--name <name>", "display name")
    .option("--plan <planId>", "plan the org is on")
    .option("--metadata <json>", "JSON object kept with the org", jsonObject)
    .option("--stripe-customer <cus_id>", "the org's Stripe customer (its subscriptions set the plan)")
    .addHelpText(
      "after",
      examples(
        'flux orgs create --id acme --name "Acme Inc." --plan pro',
        'ORG=$(flux orgs create --name "Globex" --quiet)   # prints only the new id',
      ),
    )
    .action(
      action<CreateFlags>(io, async (session, flags) => {
        const flux = await session.flux();
        const org = await flux.orgs.create(
          {
            name: flags.name,
            ...(flags.id !== undefined ? { id: flags.id } : {}),
            ...(flags.plan !== undefined ? { planId: flags.plan } : {}),
            ...(flags.metadata !== undefined ? { metadata: flags.metadata } : {}),
            ...(flags.stripeCustomer !== undefined ? { stripeCustomerId: flags.stripeCustomer } : {}),
          },
          { actor: session.actor() },
        );
        if (session.json) return session.printJson(org);
        if (session.flags.quiet) return session.out(org.id);
        session.out(orgRows([org]));
      }),
    );

  orgs
    .command("update")
    .description("Rename an organization, move it to another plan, or replace its metadata.")
    .argument("<orgId>")
    .option("--name <name>", "new display name")
    .option("--plan <planId>", "move the org to this plan")
    .option("--no-plan", "take the org off any plan")
    .option("--metadata <json>", "replace the metadata with this JSON object", jsonObject)
    .option("--stripe-customer <cus_id>", "link the org to this Stripe customer")
    .option("--no-stripe-customer", "unlink the org from its Stripe customer")
    .addHelpText(
      "after",
      examples(
        "flux orgs update acme --plan enterprise",
        'flux orgs update acme --name "Acme Corp"',
        "flux orgs update acme --stripe-customer cus_Q1w2e3r4",
      ),
    )
    .action(
      action<UpdateFlags>(io, async (session, flags, [orgId]) => {
        const changes: OrgChanges = {};
        if (flags.name !== undefined) changes.name = flags.name;
        if (flags.plan !== undefined) changes.planId = flags.plan === false ? null : flags.plan;
        if (flags.metadata !== undefined) changes.metadata = flags.metadata;
        if (flags.stripeCustomer !== undefined) {
          changes.stripeCustomerId = flags.stripeCustomer === false ? null : flags.stripeCustomer;
        }
        if (Object.keys(changes).length === 0)
          throw new UsageError(
            "Nothing to change: pass --name, --plan, --no-plan, --metadata or --stripe-customer.",
          );
        const flux = await session.flux();
        const org = await flux.orgs.update(orgId!, changes, { actor: session.actor() });
        if (session.json) return session.printJson(org);
        session.out(orgRows([org]));
      }),
    );

  orgs
    .command("list")
    .description("List organizations by id.")
    .option("--plan <planId>", "only orgs on this plan")
    .option("--limit <n>", "page size (default 50)", positiveInt(500))
    .option("--cursor <cursor>", "continue after a previous page")
    .option("--all", "every page")
    .addHelpText("after", examples("flux orgs list", "flux orgs list --plan pro --all --json"))
    .action(
      action<PageFlags & { plan?: string }>(io, async (session, flags) => {
        const flux = await session.flux();
        const page = await paged(session, flags, (cursor, limit) =>
          flux.orgs.list({
            cursor,
            ...(limit ? { limit } : {}),
            ...(flags.plan ? { planId: flags.plan } : {}),
          }),
        );
        if (session.json) return session.printJson(page);
        if (page.items.length === 0) return session.note("No orgs.");
        session.out(orgRows(page.items));
      }),
    );

  orgs
    .command("show")
    .description("Show an organization, its entitlements and how many keys it has.")
    .argument("<orgId>")
    .addHelpText("after", examples("flux orgs show acme", "flux orgs show acme --json"))
    .action(
      action(io, async (session, _flags, [orgId]) => {
        const flux = await session.flux();
        const org = await flux.orgs.get(orgId!);
        const [plan, entitlements, active] = await Promise.all([
          org.planId ? flux.plans.get(org.planId).catch(() => null) : null,
          flux.entitlements.list(org.id),
          flux.keys.list({ orgId: org.id, status: "active", limit: 500 }),
        ]);
        const activeKeys = active.nextCursor === null ? active.items.length : `${active.items.length}+`;
        if (session.json) return session.printJson({ ...org, plan, entitlements, activeKeys });
        session.out(
          details([
            ["id", org.id],
            ["name", org.name],
            ["plan", plan ? `${plan.id} (${plan.name})` : org.planId],
            ["stripe customer", org.stripeCustomerId],
            [
              "suspended",
              org.suspendedAt === null
                ? null
                : `since ${when(org.suspendedAt)}${org.suspendedReason ? ` (${org.suspendedReason})` : ""}`,
            ],
            ["active keys", activeKeys],
            ["created", when(org.createdAt)],
            ["metadata", Object.keys(org.metadata).length > 0 ? JSON.stringify(org.metadata) : null],
          ]),
        );
        if (entitlements.length > 0) {
          session.out();
          session.out(
            table(
              ["ENTITLEMENT", "GRANTED", "SOURCE", "UNTIL"],
              entitlements.map((e) => [e.name, e.granted ? "yes" : "no", e.source, when(e.expiresAt)]),
            ),
          );
        }
      }),
    );

  orgs
    .command("suspend")
    .description("Suspend an organization: every key of it is refused (403 org_suspended) until resumed.")
    .argument("<orgId>")
    .option("--reason <text>", "why (kept with the org and in the audit log)")
    .addHelpText("after", examples('flux orgs suspend acme --reason "chargeback"', "flux orgs resume acme"))
    .action(
      action<{ reason?: string }>(io, async (session, flags, [orgId]) => {
        const flux = await session.flux();
        const org = await flux.orgs.suspend(orgId!, {
          ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
          actor: session.actor(),
        });
        if (session.json) return session.printJson(org);
        session.out(
          `Suspended ${org.id} since ${when(org.suspendedAt)}: its keys are refused until resumed.`,
        );
      }),
    );

  orgs
    .command("resume")
    .description("Lift an organization's suspension: its keys work again.")
    .argument("<orgId>")
    .addHelpText("after", examples("flux orgs resume acme"))
    .action(
      action(io, async (session, _flags, [orgId]) => {
        const flux = await session.flux();
        const org = await flux.orgs.resume(orgId!, { actor: session.actor() });
        if (session.json) return session.printJson(org);
        session.out(`Resumed ${org.id}: its keys work again.`);
      }),
    );

  orgs
    .command("entitle")
    .description("Grant a feature to one org beyond its plan (or withdraw it), optionally until a date.")
    .argument("<orgId>")
    .argument("<entitlement>", "entitlement name, e.g. bulk_export")
    .option("--withdraw", "withdraw it even if the plan includes it")
    .option(
      "--until <when>",
      "override ends then: an ISO date or a duration from now (30d)",
      futureArg(Date.now),
    )
    .addHelpText(
      "after",
      examples(
        "flux orgs entitle acme bulk_export",
        "flux orgs entitle acme sso --until 30d",
        "flux orgs entitle acme bulk_export --withdraw",
      ),
    )
    .action(
      action<EntitleFlags>(io, async (session, flags, [orgId, name]) => {
        const flux = await session.flux();
        const override = await flux.orgs.setEntitlement(
          orgId!,
          name!,
          { granted: !flags.withdraw, expiresAt: flags.until ?? null },
          { actor: session.actor() },
        );
        if (session.json) return session.printJson({ orgId, ...override });
        session.out(
          `${override.granted ? "Granted" : "Withdrew"} ${override.name} ${override.granted ? "to" : "from"} ${orgId}${
            override.expiresAt ? ` until ${when(override.expiresAt)}` : ""
          }.`,
        );
      }),
    );
}
