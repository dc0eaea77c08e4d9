/** In-process: option parsing, exit-code mapping, redaction, charts, and the errors that need no store. */
import { FluxConfigError, FluxError } from "@flux-keys/core";
import { CommanderError, InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { bar, sparkline } from "../src/chart.js";
import { EXIT, exitCodeOf, RefusedError, redact, UsageError } from "../src/cli-errors.js";
import type { CliIo } from "../src/io.js";
import { collectList, durationMs, futureArg, jsonObject, quota, rateLimit, timeArg } from "../src/parse.js";
import { run } from "../src/program.js";
import { fluxOptions } from "../src/session.js";

function memoryIo(env: NodeJS.ProcessEnv = {}) {
  const out = { stdout: "", stderr: "" };
  const io: CliIo = {
    stdout: {
      write: (chunk: string) => {
        out.stdout += chunk;
      },
    },
    stderr: {
      write: (chunk: string) => {
        out.stderr += chunk;
      },
    },
    env,
  };
  return { io, out };
}

describe("option values", () => {
  it("parses durations, times, lists, limits, quotas and JSON", () => {
    expect(durationMs("90d")).toBe(90 * 86_400_000);
    expect(durationMs("1.5h")).toBe(5_400_000);
    expect(() => durationMs("soon")).toThrow(InvalidArgumentError);

    const now = () => Date.UTC(2026, 4, 10);
    expect(timeArg(now)("7d").toISOString()).toBe("2026-05-03T00:00:00.000Z");
    expect(timeArg(now)("now").getTime()).toBe(now());
    expect(timeArg(now)("2026-05-01").toISOString()).toBe("2026-05-01T00:00:00.000Z");
    expect(() => timeArg(now)("yesterday")).toThrow(InvalidArgumentError);
    expect(futureArg(now)("30d").toISOString()).toBe("2026-06-09T00:00:00.000Z");
    expect(() => futureArg(now)("2026-01-01")).toThrow(/future/);

    expect(collectList("b, c", collectList("a"))).toEqual(["a", "b", "c"]);
    expect(rateLimit("team=5000/1h/org", rateLimit("burst=10/1s"))).toEqual([
      { name: "burst", limit: 10, window: "1s" },
      { name: "team", limit: 5000, window: "1h", per: "org" },
    ]);
    expect(rateLimit("slow=5/90s")).toEqual([{ name: "slow", limit: 5, window: 90 }]);
    expect(() => rateLimit("burst:10")).toThrow(InvalidArgumentError);
    expect(quota("5000/month")).toEqual({ limit: 5000, period: "month" });
    expect(() => quota("5000/week")).toThrow(InvalidArgumentError);
    expect(jsonObject('{"a":1}')).toEqual({ a: 1 });
    expect(() => jsonObject("[1]")).toThrow(InvalidArgumentError);
  });
});

describe("exit codes and error lines", () => {
  it("maps every failure to 1, 2 or 3", () => {
    expect(exitCodeOf(new UsageError("x"))).toBe(EXIT.usage);
    expect(exitCodeOf(new CommanderError(1, "commander.unknownOption", "x"))).toBe(EXIT.usage);
    expect(exitCodeOf(new FluxError("invalid_request"))).toBe(EXIT.usage);
    expect(exitCodeOf(new FluxConfigError("invalid_option", "x"))).toBe(EXIT.usage);
    for (const code of ["not_found", "key_conflict", "scope_not_allowed", "role_denied"] as const) {
      expect(exitCodeOf(new FluxError(code))).toBe(EXIT.refused);
    }
    expect(exitCodeOf(new RefusedError("pending migrations"))).toBe(EXIT.refused);
    expect(exitCodeOf(new FluxConfigError("migration_failed", "x"))).toBe(EXIT.refused);
    expect(exitCodeOf(new FluxError("store_unavailable"))).toBe(EXIT.unavailable);
  });

  it("never prints a password or a key", () => {
    expect(redact("connect postgresql://flux:s3cret@db:5432/x failed")).toBe(
      "connect postgresql://flux:***@db:5432/x failed",
    );
    expect(redact("redis://:hunter2@cache:6379")).toBe("redis://:***@cache:6379");
    expect(redact(`got flux_live_${"a".repeat(49)}\nat line`)).toBe("got [redacted key] at line");
  });

  it("reports a missing database, conflicting stores and missing options as usage errors", async () => {
    const none = memoryIo();
    expect(await run(["keys", "list", "--org", "acme"], none.io)).toBe(1);
    expect(none.out.stderr).toBe(
      "flux: No database: pass --database <url> (or set DATABASE_URL), or --pglite <folder> for the embedded store.\n",
    );

    const both = memoryIo();
    expect(await run(["plans", "list", "--pglite", "./x", "--database", "postgresql://h/db"], both.io)).toBe(
      1,
    );
    expect(both.out.stderr).toBe("flux: Pass either --database or --pglite, not both.\n");

    const top = memoryIo();
    expect(await run(["usage", "top", "--by", "endpoint"], top.io)).toBe(1);
    expect(top.out.stderr).toBe("flux: required option '--org <orgId>' not specified (see --help)\n");

    const nothing = memoryIo();
    expect(await run(["keys", "update", "key_1", "--pglite", "./x"], nothing.io)).toBe(1);
    expect(nothing.out.stderr).toBe("flux: Nothing to change: see `flux keys update --help`.\n");
  });

  it("documents the commands, the connection and the exit codes in --help", async () => {
    const help = memoryIo();
    expect(await run(["--help"], help.io)).toBe(0);
    for (const command of ["migrate", "plans", "orgs", "keys", "usage", "audit", "portal"]) {
      expect(help.out.stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
    }
    expect(help.out.stdout).toContain("Exit codes: 0 success, 1 usage error");
  });
});

describe("connection", () => {
  it("takes flags first, then the environment; the pepper only from the environment", () => {
    const env = {
      DATABASE_URL: "postgresql://env/db",
      FLUX_DATABASE_SCHEMA: "tenant",
      REDIS_URL: "redis://env:6379",
      FLUX_KEY_PREFIX: "acme",
      FLUX_PEPPER: "a-long-server-side-pepper",
    };
    expect(fluxOptions({}, env)).toEqual({
      migrate: false,
      database: { url: "postgresql://env/db", schema: "tenant", poolSize: 2 },
      redis: { url: "redis://env:6379" },
      keyPrefix: "acme",
      pepper: "a-long-server-side-pepper",
    });
    expect(fluxOptions({ pglite: "./data", redis: false }, env)).toMatchObject({
      database: { pglite: "./data" },
      redis: null,
    });
    expect(fluxOptions({ database: "postgresql://flag/db", schema: "s" }, {})).toMatchObject({
      database: { url: "postgresql://flag/db", schema: "s" },
      redis: null,
    });
  });

  it("takes the direct URL behind a pooler from --direct-url, then DIRECT_URL", () => {
    const env = { DATABASE_URL: "postgresql://pgbouncer:6432/db", DIRECT_URL: "postgresql://db:5432/db" };
    expect(fluxOptions({}, env).database).toEqual({
      url: "postgresql://pgbouncer:6432/db",
      directUrl: "postgresql://db:5432/db",
      poolSize: 2,
    });
    expect(fluxOptions({ directUrl: "postgresql://other:5432/db" }, env).database).toMatchObject({
      directUrl: "postgresql://other:5432/db",
    });
    expect(() => fluxOptions({ pglite: "./data", directUrl: "postgresql://db/db" }, {})).toThrow(
      /--direct-url/,
    );
  });
});

describe("charts", () => {
  it("draws proportional bars and sums long series into the sparkline's width", () => {
    expect(bar(10, 10, 4)).toBe("████");
    expect(bar(1, 8, 1)).toBe("▏");
    expect(bar(0, 10)).toBe("");
    expect(sparkline([0, 1, 2, 4])).toBe(" ▂▄█");
    expect(sparkline([1, 1, 1, 1, 4, 4], 3)).toBe("▂▂█");
  });
});
