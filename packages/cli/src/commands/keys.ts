import type { ApiKeyInfo, KeyChanges, KeyStatus, Quota, RateLimitWindow } from "@flux-keys/core";
import { type Command, Option } from "commander";
import { UsageError } from "../cli-errors.js";
import { action, examples, type PageFlags, paged } from "../command.js";
import type { CliIo } from "../io.js";
import { keyDetails, keyDisplay, keyRows, list, table, when } from "../output.js";
import { collectList, durationMs, futureArg, jsonObject, positiveInt, quota, rateLimit } from "../parse.js";
import type { Session } from "../session.js";
import { printable } from "../terminal.js";

interface CreateFlags {
  org: string;
  name?: string;
  scope?: string[];
  expiresIn?: number;
  expiresAt?: Date;
  env: "live" | "test";
  rateLimit?: RateLimitWindow[];
  quota?: Quota;
  metadata?: Record<string, unknown>;
}

interface UpdateFlags {
  name?: string;
  scope?: string[];
  expiresIn?: number;
  expiresAt?: Date;
  expiry?: boolean;
  rateLimit?: RateLimitWindow[];
  inheritRateLimits?: boolean;
  quota?: Quota;
  inheritQuota?: boolean;
  metadata?: Record<string, unknown>;
}

const STATUSES: KeyStatus[] = ["active", "grace", "expired", "revoked"];

function expiresInOption() {
  return new Option("--expires-in <duration>", "expire after this long, e.g. 90d, 12h").argParser(durationMs);
}

function expiresAtOption() {
  return new Option("--expires-at <date>", "expire at this ISO date")
    .argParser(futureArg(Date.now))
    .conflicts("expiresIn");
}

/** The secret goes to stdout exactly once; with --quiet it is the only thing on stdout. */
function printSecret(session: Session, secret: string, summary: string[]): void {
  if (session.flags.quiet) {
    session.out(secret);
    return;
  }
  for (const line of summary) session.out(line);
  session.out("Secret (shown once, store it now):");
  session.out(secret);
}

function summary(key: ApiKeyInfo): string {
  return `${key.id} "${printable(key.name)}" for org ${key.orgId}; scopes: ${list(key.scopes)}; expires: ${when(key.expiresAt)}`;
}

export function registerKeys(program: Command, io: CliIo): void {
  const keys = program.command("keys").description("Issue, inspect, change, rotate and revoke API keys.");

  keys
    .command("create")
    .description("Issue a key and print its secret once, on stdout.")
    .requiredOption("--org <orgId>", "org that owns the key")
    .option("--name <name>", 'display name (default "API key")')
    .option("--scope <scopes>", "scope (repeatable, comma-separated)", collectList)
    .addOption(expiresInOption())
    .addOption(expiresAtOption())
    .addOption(
      new Option("--env <environment>", "live or test key").choices(["live", "test"]).default("live"),
    )
    .option(
      "--rate-limit <window>",
      "own window NAME=LIMIT/WINDOW instead of the plan's (repeatable)",
      rateLimit,
    )
    .option("--quota <quota>", "own quota LIMIT/day|month|total instead of the plan's", quota)
    .option("--metadata <json>", "JSON object kept with the key", jsonObject)
    .addHelpText(
      "after",
      examples(
        'flux keys create --org acme --name "CI deploys" --scope read:events --scope write:configs --expires-in 90d',
        "SECRET=$(flux keys create --org acme --name ci --scope read:events --quiet)",
        "flux keys create --org acme --env test --json | jq -r .secret",
      ),
    )
    .action(
      action<CreateFlags>(io, async (session, flags) => {
        const flux = await session.flux();
        const builder = flux.keys
          .create()
          .forOrg(flags.org)
          .withScopes(flags.scope ?? [])
          .environment(flags.env)
          .createdBy(session.actor());
        if (flags.name !== undefined) builder.named(flags.name);
        if (flags.expiresIn !== undefined) builder.expiresAt(new Date(Date.now() + flags.expiresIn));
        if (flags.expiresAt !== undefined) builder.expiresAt(flags.expiresAt);
        if (flags.rateLimit !== undefined) builder.withRateLimits(flags.rateLimit);
        if (flags.quota !== undefined) builder.withQuota(flags.quota);
        if (flags.metadata !== undefined) builder.withMetadata(flags.metadata);
        const { key, secret } = await builder.issue();
        if (session.json) return session.printJson({ key, secret });
        printSecret(session, secret, [`Created ${summary(key)}.`]);
      }),
    );

  keys
    .command("list")
    .description("List an org's keys, newest first (never their secrets).")
    .requiredOption("--org <orgId>")
    .addOption(new Option("--status <status>", "only keys in this state").choices(STATUSES))
    .option("--limit <n>", "page size (default 50)", positiveInt(500))
    .option("--cursor <cursor>", "continue after a previous page")
    .option("--all", "every page")
    .addHelpText(
      "after",
      examples("flux keys list --org acme", "flux keys list --org acme --status grace --json"),
    )
    .action(
      action<PageFlags & { org: string; status?: KeyStatus }>(io, async (session, flags) => {
        const flux = await session.flux();
        const page = await paged(session, flags, (cursor, limit) =>
          flux.keys.list({
            orgId: flags.org,
            cursor,
            ...(limit ? { limit } : {}),
            ...(flags.status ? { status: flags.status } : {}),
          }),
        );
        if (session.json) return session.printJson(page);
        if (page.items.length === 0) return session.note(`No keys for org ${flags.org}.`);
        session.out(keyRows(page.items));
      }),
    );

  keys
    .command("show")
    .description("Show one key (never its secret).")
    .argument("<keyId>")
    .addHelpText("after", examples("flux keys show key_8fK2…", "flux keys show key_8fK2… --json"))
    .action(
      action(io, async (session, _flags, [keyId]) => {
        const flux = await session.flux();
        const key = await flux.keys.get(keyId!);
        // Who still uses it during a rotation grace, and the scopes it actually exercised.
        const grace = key.status === "grace" ? await flux.keys.graceUsage(key.id) : null;
        const scopes = await flux.keys.suggestScopes(key.id);
        if (session.json) return session.printJson({ ...key, grace, scopeSuggestion: scopes });
        session.out(keyDetails(key));
        if (grace !== null) {
          session.out(
            `\nIn grace until ${when(grace.sunsetAt)}: ${grace.calls} call(s) since the rotation` +
              (grace.clients.length === 0 ? "." : ", from:"),
          );
          if (grace.clients.length > 0) {
            session.out(
              table(
                ["address", "user agent", "calls", "last seen"],
                grace.clients.map((c) => [c.address, c.userAgent || "-", c.calls, when(c.lastSeenAt)]),
              ),
            );
          }
        }
        if (scopes.used.length > 0 && scopes.narrower) {
          session.out(
            `\nLeast privilege: it only used ${list(scopes.suggested)}` +
              (scopes.unused.length > 0 ? `; never ${list(scopes.unused)}.` : "."),
          );
        }
      }),
    );

  keys
    .command("update")
    .description(
      "Change a key's name, scopes, expiry, limits, quota or metadata (the secret stays the same).",
    )
    .argument("<keyId>")
    .option("--name <name>", "new display name")
    .option("--scope <scopes>", "replace the scopes (repeatable, comma-separated)", collectList)
    .addOption(expiresInOption())
    .addOption(expiresAtOption())
    .addOption(new Option("--no-expiry", "never expire").conflicts(["expiresIn", "expiresAt"]))
    .option(
      "--rate-limit <window>",
      "replace the key's own windows NAME=LIMIT/WINDOW (repeatable)",
      rateLimit,
    )
    .addOption(
      new Option("--inherit-rate-limits", "drop the key's own windows: use the plan's").conflicts(
        "rateLimit",
      ),
    )
    .option("--quota <quota>", "own quota LIMIT/day|month|total", quota)
    .addOption(new Option("--inherit-quota", "drop the key's own quota: use the plan's").conflicts("quota"))
    .option("--metadata <json>", "replace the metadata with this JSON object", jsonObject)
    .addHelpText(
      "after",
      examples(
        "flux keys update key_8fK2… --scope read:events,read:configs",
        "flux keys update key_8fK2… --expires-in 30d",
        "flux keys update key_8fK2… --rate-limit burst=5/1s --quota 1000/day",
      ),
    )
    .action(
      action<UpdateFlags>(io, async (session, flags, [keyId]) => {
        const changes: KeyChanges = {};
        if (flags.name !== undefined) changes.name = flags.name;
        if (flags.scope !== undefined) changes.scopes = flags.scope;
        if (flags.expiresIn !== undefined) changes.expiresAt = new Date(Date.now() + flags.expiresIn);
        if (flags.expiresAt !== undefined) changes.expiresAt = flags.expiresAt;
        if (flags.expiry === false) changes.expiresAt = null;
        if (flags.rateLimit !== undefined) changes.rateLimits = flags.rateLimit;
        if (flags.inheritRateLimits) changes.rateLimits = null;
        if (flags.quota !== undefined) changes.quota = flags.quota;
        if (flags.inheritQuota) changes.quota = null;
        if (flags.metadata !== undefined) changes.metadata = flags.metadata;
        if (Object.keys(changes).length === 0)
          throw new UsageError("Nothing to change: see `flux keys update --help`.");
        const flux = await session.flux();
        const key = await flux.keys.update(keyId!, changes, { actor: session.actor() });
        if (session.json) return session.printJson(key);
        session.out(keyDetails(key));
      }),
    );

  keys
    .command("rotate")
    .description(
      "Issue a successor with the same org, scopes, limits and metadata; the old key keeps working until the grace period ends.",
    )
    .argument("<keyId>")
    .option(
      "--grace <duration>",
      "how long the old key keeps working (at most 90d; 0s ends it now)",
      durationMs,
      durationMs("24h"),
    )
    .addHelpText(
      "after",
      examples(
        "flux keys rotate key_8fK2… --grace 24h",
        "NEW=$(flux keys rotate key_8fK2… --grace 7d --quiet)",
      ),
    )
    .action(
      action<{ grace: number }>(io, async (session, flags, [keyId]) => {
        const flux = await session.flux();
        const { key, secret, previous } = await flux.keys.rotate(keyId!, {
          gracePeriod: flags.grace,
          actor: session.actor(),
        });
        if (session.json) return session.printJson({ key, secret, previous });
        printSecret(session, secret, [
          `Rotated ${previous.id} (${keyDisplay(previous)}): it keeps working until ${when(previous.sunsetAt)}.`,
          `New key ${summary(key)}.`,
        ]);
      }),
    );

  keys
    .command("revoke")
    .description(
      "Revoke a key at once (idempotent), and the older keys it replaced that are still in their rotation grace.",
    )
    .argument("<keyId>")
    .option("--reason <text>", "why (kept in the key and the audit log)")
    .option("--key-only", "revoke this key only: predecessors in grace keep working until their sunset")
    .addHelpText("after", examples('flux keys revoke key_8fK2… --reason "leaked in a CI log"'))
    .action(
      action<{ reason?: string; keyOnly?: boolean }>(io, async (session, flags, [keyId]) => {
        const flux = await session.flux();
        const key = await flux.keys.revoke(keyId!, {
          ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
          ...(flags.keyOnly ? { lineage: false } : {}),
          actor: session.actor(),
        });
        if (session.json) return session.printJson(key);
        session.out(`Revoked ${key.id} (${keyDisplay(key)}) at ${when(key.revokedAt)}.`);
        if (key.revokedWith.length > 0) {
          session.out(`Also revoked the keys it replaced, still in grace: ${key.revokedWith.join(", ")}.`);
        }
      }),
    );
}
