import {
  type Granularity,
  USAGE_OUTCOMES,
  type UsageOutcome,
  type UsageQueryResult,
  type UsageTopEntry,
} from "@flux-keys/core";
import { type Command, Option } from "commander";
import { bar, sparkline } from "../chart.js";
import { UsageError } from "../cli-errors.js";
import { action, examples } from "../command.js";
import type { CliIo } from "../io.js";
import { table } from "../output.js";
import { positiveInt, timeArg } from "../parse.js";

interface SeriesFlags {
  org?: string;
  key?: string;
  endpoint?: string;
  method?: string;
  outcome?: UsageOutcome;
  byOutcome?: boolean;
  from: Date;
  to: Date;
  by: Granularity;
}

interface TopFlags {
  org: string;
  by: "key" | "endpoint";
  from: Date;
  to: Date;
  limit?: number;
}

const time = timeArg(Date.now);
const fromOption = () =>
  new Option("--from <when>", "start: ISO date, or an age such as 7d")
    .argParser(time)
    .default(time("7d"), "7d ago");
const toOption = () =>
  new Option("--to <when>", "end: ISO date or now").argParser(time).default(time("now"), "now");
const DAY_MS = 86_400_000;

function ms(value: number | null): string {
  return value === null ? "-" : value.toFixed(1);
}

function label(at: Date, by: Granularity): string {
  const iso = at.toISOString();
  return by === "day" ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** One line per outcome (served, or why refused), most calls first. */
function renderOutcomes(result: UsageQueryResult): string {
  if (result.series.length === 0) return "No usage.";
  const max = Math.max(...result.series.map((s) => s.totals.calls));
  return table(
    ["OUTCOME", "CALLS", "ERRORS", "AVG MS", "MAX MS", ""],
    result.series.map((s) => [
      s.group.outcome ?? "-",
      s.totals.calls,
      s.totals.errors,
      ms(s.totals.latencyAvgMs),
      ms(s.totals.latencyMaxMs),
      bar(s.totals.calls, max),
    ]),
  );
}

/** `allowed 97, rate_limited 3`: how the calls of a range ended. */
function outcomeLine(result: UsageQueryResult): string {
  if (result.series.length === 0) return "none";
  return result.series.map((s) => `${s.group.outcome} ${s.totals.calls}`).join(", ");
}

function render(result: UsageQueryResult, width: number, outcomes?: UsageQueryResult): string {
  const series = result.series[0];
  if (series === undefined) return "No usage.";
  const max = Math.max(0, ...series.points.map((p) => p.calls));
  const lines = table(
    [result.granularity.toUpperCase(), "CALLS", "ERRORS", "AVG MS", "MAX MS", ""],
    series.points.map((p) => [
      label(p.at, result.granularity),
      p.calls,
      p.errors,
      ms(p.latencyAvgMs),
      ms(p.latencyMaxMs),
      bar(p.calls, max),
    ]),
  );
  const t = series.totals;
  const chart = sparkline(
    series.points.map((p) => p.calls),
    Math.max(10, Math.min(100, width - 12)),
  );
  return [
    lines,
    "",
    `total  ${t.calls} calls, ${t.errors} errors, avg ${ms(t.latencyAvgMs)} ms, max ${ms(t.latencyMaxMs)} ms`,
    ...(outcomes === undefined ? [] : [`by outcome  ${outcomeLine(outcomes)}`]),
    `calls  ${chart}`,
    `       ${label(result.from, result.granularity)} … ${label(result.to, result.granularity)} (UTC)`,
  ].join("\n");
}

export function registerUsage(program: Command, io: CliIo): void {
  const usage = program
    .command("usage")
    .description(
      "Calls over time (`flux usage [series]`, the default) and the busiest keys or endpoints (`flux usage top`).",
    )
    .addHelpText(
      "after",
      examples(
        "flux usage --org acme --from 2026-05-01 --to 2026-06-01 --by day",
        "flux usage top --org acme --by endpoint --from 7d",
        "flux usage series --help   # every option of `flux usage`",
      ),
    );

  usage
    // The default subcommand: `flux usage --org …` runs it, and `flux usage top` stays reachable.
    .command("series", { isDefault: true })
    .description("Calls over time for an org, a key or an endpoint: a table and a small chart.")
    .option("--org <orgId>", "only this org's calls")
    .option("--key <keyId>", "only this key's calls")
    .option("--endpoint <template>", "only this route template, e.g. '/v1/events/:id'")
    .option("--method <method>", "only this HTTP method")
    .addOption(
      new Option("--outcome <outcome>", "only calls with this outcome (allowed: the served ones)").choices(
        USAGE_OUTCOMES,
      ),
    )
    .option("--by-outcome", "one line (with --json: one series) per outcome: served, or why refused")
    .addOption(fromOption())
    .addOption(toOption())
    .addOption(
      new Option("--by <granularity>", "bucket size").choices(["minute", "hour", "day"]).default("day"),
    )
    .addHelpText(
      "after",
      examples(
        "flux usage --org acme --from 2026-05-01 --to 2026-06-01 --by day",
        "flux usage --org acme --key key_8fK2… --from 24h --by hour",
        "flux usage --org acme --endpoint '/v1/events/:id' --from 30d --json",
        "flux usage --org acme --from 24h --by hour --by-outcome   # throttled and refused calls",
      ),
    )
    .action(
      action<SeriesFlags>(io, async (session, flags) => {
        if (flags.org === undefined && flags.key === undefined) throw new UsageError("Pass --org or --key.");
        const flux = await session.flux();
        const query = {
          ...(flags.org !== undefined ? { orgId: flags.org } : {}),
          ...(flags.key !== undefined ? { keyId: flags.key } : {}),
          ...(flags.endpoint !== undefined ? { endpoint: flags.endpoint } : {}),
          ...(flags.method !== undefined ? { method: flags.method } : {}),
          ...(flags.outcome !== undefined ? { outcome: flags.outcome } : {}),
          from: flags.from,
          to: flags.to,
          granularity: flags.by,
        };
        const long = flags.to.getTime() - flags.from.getTime() > 7 * DAY_MS;
        if (flags.byOutcome) {
          const run = () => flux.usage.query({ ...query, groupBy: ["outcome"] });
          const result = long ? await session.progress("Querying usage…", run) : await run();
          if (session.json) return session.printJson(result);
          return session.out(renderOutcomes(result));
        }
        const run = () => flux.usage.query(query);
        const result = long ? await session.progress("Querying usage…", run) : await run();
        if (session.json) return session.printJson(result);
        const outcomes = await flux.usage.query({ ...query, groupBy: ["outcome"] });
        session.out(render(result, io.stdout.columns ?? 80, outcomes));
      }),
    );

  usage
    .command("top")
    .description("An org's busiest keys or endpoints in a range, most calls first.")
    .requiredOption("--org <orgId>")
    .addOption(
      new Option("--by <dimension>", "rank keys or endpoints").choices(["key", "endpoint"]).default("key"),
    )
    .addOption(fromOption())
    .addOption(toOption())
    .option("--limit <n>", "how many (default 10)", positiveInt(1000))
    .addHelpText(
      "after",
      examples(
        "flux usage top --org acme",
        "flux usage top --org acme --by endpoint --from 30d --limit 5 --json",
      ),
    )
    .action(
      action<TopFlags>(io, async (session, flags) => {
        const flux = await session.flux();
        const run = () =>
          flux.usage.top({
            orgId: flags.org,
            by: flags.by,
            from: flags.from,
            to: flags.to,
            ...(flags.limit ? { limit: flags.limit } : {}),
          });
        const long = flags.to.getTime() - flags.from.getTime() > 7 * DAY_MS;
        const entries: UsageTopEntry[] = long ? await session.progress("Querying usage…", run) : await run();
        if (session.json) return session.printJson(entries);
        if (entries.length === 0) return session.note("No usage in this range.");
        const max = Math.max(...entries.map((e) => e.calls));
        session.out(
          table(
            [flags.by === "key" ? "KEY" : "ENDPOINT", "CALLS", "ERRORS", "AVG MS", "MAX MS", ""],
            entries.map((e) => [
              flags.by === "key" ? (e.keyId ?? "-") : `${e.method} ${e.endpoint}`,
              e.calls,
              e.errors,
              ms(e.latencyAvgMs),
              ms(e.latencyMaxMs),
              bar(e.calls, max),
            ]),
          ),
        );
      }),
    );
}
