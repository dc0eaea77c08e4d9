/**
 * The real `flux` binary against PGlite (a folder) and PostgreSQL (a fresh schema it creates):
 * what it prints works through core, `--json` parses, exit codes are as documented.
 * Each spawn costs about a second, so each test groups the assertions of one scenario.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ApiKeyInfo, createFlux, type FluxOptions, loadMigrations, type Plan } from "@flux-keys/core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, cleanEnv, flux, fluxJson, SECRET_PATTERN } from "./cli.js";
import { DATABASE_URL, hasPostgres, uniqueName } from "./services.js";

export interface Target {
  name: string;
  available: boolean;
  setup(): Promise<{ args: string[]; core: FluxOptions; teardown(): Promise<void> }>;
}

export const TARGETS = {
  pglite: {
    name: "pglite",
    available: true,
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), "flux-cli-"));
      return {
        args: ["--pglite", dir],
        core: { database: { pglite: dir }, redis: null, migrate: false },
        teardown: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
  postgres: {
    name: "postgres",
    available: hasPostgres,
    async setup() {
      // Not created beforehand: `flux migrate --schema` creates it.
      const schema = uniqueName("flux_cli");
      return {
        args: ["--database", DATABASE_URL, "--schema", schema],
        core: { database: { url: DATABASE_URL, schema, poolSize: 2 }, redis: null, migrate: false },
        async teardown() {
          const client = new pg.Client({ connectionString: DATABASE_URL });
          await client.connect();
          await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await client.end();
        },
      };
    },
  },
} satisfies Record<string, Target>;

const HOUR = 3_600_000;

/**
 * The whole scenario on one store. `portal` adds the portal commands, `exitCodes` the refusal and
 * bad-input cases (store-independent, so run on one store only: spawns are what makes this slow).
 */
export function cliSuite(target: Target, options: { portal: boolean; exitCodes: boolean }): void {
  // Generous timeouts: a spawn is about a second on an idle machine, several on a busy one.
  describe.skipIf(!target.available)(`flux on ${target.name}`, { timeout: 180_000 }, () => {
    let args: string[];
    let core: FluxOptions;
    let teardown = async () => {};
    const state = {
      secret: "",
      keyId: "",
      // Usage recorded through core, in whole past hours so the query range is exact.
      from: new Date(Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR),
    };

    beforeAll(async () => {
      if (!target.available) return;
      ({ args, core, teardown } = await target.setup());
    });
    afterAll(() => teardown());

    it("migrate applies every migration once and is safe to repeat", async () => {
      const expected = (await loadMigrations()).map((m) => m.id);
      const first = await fluxJson<{ applied: string[]; alreadyApplied: string[] }>(["migrate", ...args]);
      expect(first).toEqual({ applied: expected, alreadyApplied: [] });

      const again = await flux(["migrate", ...args]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`Database up to date (${expected.length} migrations applied earlier).`);
    });

    it("creates a plan, an org and a key whose printed secret verifies through core", async () => {
      const plan = await fluxJson<Plan>([
        "plans",
        "upsert",
        "pro",
        "--name",
        "Pro",
        "--scope",
        "read:*,write:events",
        "--rate-limit",
        "burst=100/1s",
        "--entitlement",
        "bulk_export",
        ...args,
      ]);
      expect(plan).toMatchObject({
        id: "pro",
        scopes: ["read:*", "write:events"],
        entitlements: ["bulk_export"],
      });
      expect(plan.rateLimits).toEqual([{ name: "burst", limit: 100, window: "1s" }]);

      const org = await flux([
        "orgs",
        "create",
        "--id",
        "acme",
        "--name",
        "Acme Inc.",
        "--plan",
        "pro",
        "--quiet",
        ...args,
      ]);
      expect(org).toMatchObject({ code: 0, stdout: "acme\n", stderr: "" });

      // --quiet: the secret and nothing else on stdout.
      const quiet = await flux([
        "keys",
        "create",
        "--org",
        "acme",
        "--name",
        "ci",
        "--scope",
        "read:events",
        "--expires-in",
        "90d",
        "--quiet",
        "--actor",
        "ci-bot",
        ...args,
      ]);
      expect(quiet.code).toBe(0);
      expect(quiet.stderr).toBe("");
      const lines = quiet.stdout.split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(SECRET_PATTERN);
      expect(lines[1]).toBe("");
      state.secret = lines[0]!;

      // Without --quiet: a summary, then the secret once, on its own last line.
      const human = await flux([
        "keys",
        "create",
        "--org",
        "acme",
        "--name",
        "sandbox",
        "--env",
        "test",
        ...args,
      ]);
      expect(human.code).toBe(0);
      const out = human.stdout.trimEnd().split("\n");
      expect(out[0]).toMatch(/^Created key_\S+ "sandbox" for org acme/);
      expect(out.at(-1)).toMatch(/^flux_test_/);
      expect(human.stdout.match(/flux_test_/g)).toHaveLength(1);

      const f = await createFlux(core);
      try {
        const ctx = await f.keys.verify(state.secret);
        state.keyId = ctx.keyId;
        expect(ctx).toMatchObject({
          orgId: "acme",
          name: "ci",
          scopes: ["read:events"],
          plan: { id: "pro" },
        });
        expect(ctx.expiresAt!.getTime() - Date.now()).toBeGreaterThan(89 * 86_400_000);
        expect(f.entitlements.checkForKey(ctx, "bulk_export")).toBe(true);
        const key = await f.keys.get(ctx.keyId);
        expect(key.createdBy).toEqual({ type: "admin", id: "ci-bot" });
        // Three calls in the first hours; later on (outside the range of the first queries), 2
        // served and 3 refused.
        const later = 5 * 60;
        for (const [offset, status, latencyMs, outcome] of [
          [10, 200, 10, "allowed"],
          [70, 200, 20, "allowed"],
          [130, 500, 30, "allowed"],
          [later, 200, 1, "allowed"],
          [later, 200, 1, "allowed"],
          [later, 429, 1, "rate_limited"],
          [later, 429, 1, "rate_limited"],
          [later, 401, 1, "revoked"],
        ] as const) {
          f.usage.record({
            keyId: ctx.keyId,
            orgId: "acme",
            method: "GET",
            endpoint: "/v1/events/:id",
            status,
            latencyMs,
            outcome,
            at: new Date(state.from.getTime() + offset * 60_000),
          });
        }
        await f.usage.flush();
      } finally {
        await f.close();
      }
    });

    it("links an org to its Stripe customer and unlinks it", async () => {
      const linked = await fluxJson<{ stripeCustomerId: string | null }>([
        "orgs",
        "update",
        "acme",
        "--stripe-customer",
        "cus_Acme123",
        ...args,
      ]);
      expect(linked.stripeCustomerId).toBe("cus_Acme123");
      const bad = await flux(["orgs", "update", "acme", "--stripe-customer", "acme", ...args]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("Stripe customer id");
      const unlinked = await fluxJson<{ stripeCustomerId: string | null }>([
        "orgs",
        "update",
        "acme",
        "--no-stripe-customer",
        ...args,
      ]);
      expect(unlinked.stripeCustomerId).toBeNull();
    });

    it("suspends an org (its keys refused) and resumes it", async () => {
      const suspended = await flux(["orgs", "suspend", "acme", "--reason", "chargeback", ...args]);
      expect(suspended.code, suspended.stderr).toBe(0);
      expect(suspended.stdout).toMatch(/^Suspended acme since .+: its keys are refused until resumed\.\n$/);
      const shown = await flux(["orgs", "show", "acme", ...args]);
      expect(shown.stdout).toMatch(/suspended +since .+ \(chargeback\)/);
      const listed = await flux(["orgs", "list", ...args]);
      expect(listed.stdout).toMatch(/^acme .* suspended /m);
      const f = await createFlux(core);
      try {
        await expect(f.keys.verify(state.secret)).rejects.toMatchObject({ code: "org_suspended" });
      } finally {
        await f.close();
      }
      const resumed = await fluxJson<{ suspendedAt: string | null }>(["orgs", "resume", "acme", ...args]);
      expect(resumed.suspendedAt).toBeNull();
      const missing = await flux(["orgs", "suspend", "nope", ...args]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain("No such org");
    });

    it("lists keys, rotates with grace and revokes", async () => {
      const list = await flux(["keys", "list", "--org", "acme", ...args]);
      expect(list.code).toBe(0);
      const rows = list.stdout.trimEnd().split("\n");
      expect(rows[0]).toMatch(/^ID +NAME +STATUS +KEY +SCOPES +EXPIRES +LAST USED +CREATED$/);
      expect(rows.slice(1).map((row) => row.split(/ {2,}/)[1])).toEqual(["sandbox", "ci"]);
      expect(rows[2]).toContain(`${state.secret.slice(0, 14)}…${state.secret.slice(-4)}`);
      expect(list.stdout).not.toContain(state.secret);

      const rotated = await fluxJson<{ key: ApiKeyInfo; secret: string; previous: ApiKeyInfo }>([
        "keys",
        "rotate",
        state.keyId,
        "--grace",
        "1h",
        ...args,
      ]);
      expect(rotated.secret).toMatch(SECRET_PATTERN);
      expect(rotated.previous).toMatchObject({
        id: state.keyId,
        status: "grace",
        replacedById: rotated.key.id,
      });
      const shown = await flux(["keys", "show", state.keyId, ...args]);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/In grace until .*: 0 call\(s\) since the rotation\./);

      const revoked = await flux([
        "keys",
        "revoke",
        rotated.key.id,
        "--reason",
        "leaked in a CI log",
        ...args,
      ]);
      expect(revoked.code).toBe(0);
      expect(revoked.stdout).toMatch(new RegExp(`^Revoked ${rotated.key.id} `));
      // Revoking the successor ends the lineage: the old key in grace is revoked with it.
      expect(revoked.stdout).toContain(`Also revoked the keys it replaced, still in grace: ${state.keyId}.`);

      const f = await createFlux(core);
      try {
        await expect(f.keys.verify(state.secret)).rejects.toMatchObject({ code: "key_revoked" });
        await expect(f.keys.verify(rotated.secret)).rejects.toMatchObject({ code: "key_revoked" });
        expect((await f.keys.get(rotated.key.id)).revokedReason).toBe("leaked in a CI log");
      } finally {
        await f.close();
      }
    });

    it("shows usage as JSON, as a table with a chart, and the top endpoints; and the audit log", async () => {
      const range = [
        "--from",
        state.from.toISOString(),
        "--to",
        new Date(state.from.getTime() + 3 * HOUR).toISOString(),
      ];
      const series = await fluxJson<{
        series: Array<{ totals: { calls: number; errors: number }; points: unknown[] }>;
      }>(["usage", "--org", "acme", "--key", state.keyId, ...range, "--by", "hour", ...args]);
      expect(series.series).toHaveLength(1);
      expect(series.series[0]!.totals).toMatchObject({ calls: 3, errors: 1 });
      expect(series.series[0]!.points).toHaveLength(3);

      const table = await flux(["usage", "--org", "acme", ...range, "--by", "hour", ...args]);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/^HOUR +CALLS +ERRORS +AVG MS +MAX MS/);
      expect(table.stdout).toContain("total  3 calls, 1 errors, avg 20.0 ms, max 30.0 ms");
      expect(table.stdout).toContain("by outcome  allowed 3");
      expect(table.stdout).toMatch(/calls {2}[▁-█]{3}/);

      // How the calls ended: served, or why refused.
      const later = ["--from", new Date(state.from.getTime() + 4 * HOUR).toISOString(), "--to"];
      later.push(new Date(state.from.getTime() + 6 * HOUR).toISOString());
      const byOutcome = await fluxJson<{
        series: Array<{ group: { outcome: string }; totals: { calls: number } }>;
      }>(["usage", "--org", "acme", ...later, "--by", "hour", "--by-outcome", ...args]);
      expect(Object.fromEntries(byOutcome.series.map((s) => [s.group.outcome, s.totals.calls]))).toEqual({
        allowed: 2,
        rate_limited: 2,
        revoked: 1,
      });

      const top = await fluxJson<Array<{ endpoint: string; calls: number }>>([
        "usage",
        "top",
        "--org",
        "acme",
        "--by",
        "endpoint",
        ...range,
        ...args,
      ]);
      expect(top).toEqual([
        expect.objectContaining({ method: "GET", endpoint: "/v1/events/:id", calls: 3, errors: 1 }),
      ]);

      const audit = await fluxJson<{
        items: Array<{ action: string; keyId: string | null; actor: { type: string; id?: string } }>;
      }>(["audit", "--org", "acme", "--key", state.keyId, ...args]);
      expect(audit.items.map((e) => e.action)).toEqual(["key.revoked", "key.rotated", "key.created"]);
      expect(audit.items[2]!.actor).toEqual({ type: "admin", id: "ci-bot" });
    });

    if (options.exitCodes)
      it("exits 2 for what is not there or refused, 1 for bad input, with one line on stderr", async () => {
        const missing = await flux(["keys", "show", "key_missing", ...args]);
        expect(missing).toMatchObject({ code: 2, stdout: "", stderr: "flux: No such key. (not_found)\n" });

        const badInput = await flux(["orgs", "create", "--id", "no spaces", "--name", "X", ...args]);
        expect(badInput.code).toBe(1);
        expect(badInput.stderr).toMatch(/^flux: org\.id: .*\(invalid_request\)\n$/);
      });

    if (options.portal)
      it("portal link prints a URL; portal serve signs a customer in and stops on SIGTERM", async () => {
        const link = await flux([
          "portal",
          "link",
          "--org",
          "acme",
          "--user",
          "alice",
          "--role",
          "admin",
          "--base-url",
          "https://app.example.com/portal",
          ...args,
        ]);
        expect(link.code).toBe(0);
        expect(link.stdout).toMatch(/^https:\/\/app\.example\.com\/portal\/login\/\S+\n$/);

        const child = spawn(
          process.execPath,
          [
            BIN,
            "portal",
            "serve",
            "--port",
            "0",
            "--org",
            "acme",
            "--user",
            "alice",
            "--role",
            "admin",
            ...args,
          ],
          { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] },
        );
        const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
        let stdout = "";
        const signIn = await new Promise<string>((resolve, reject) => {
          child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
            stdout += chunk;
            const match = /Sign-in link \(.*\): (\S+)/.exec(stdout);
            if (match) resolve(match[1]!);
          });
          child.on("exit", () => reject(new Error(`portal serve exited early: ${stdout}`)));
        });
        try {
          expect(stdout).toMatch(/^Portal listening on http:\/\/127\.0\.0\.1:\d+\/portal\n/);
          const login = await fetch(signIn, { redirect: "manual" });
          expect(login.status).toBeGreaterThanOrEqual(300);
          expect(login.status).toBeLessThan(400);
          const cookies = login.headers
            .getSetCookie()
            .map((c) => c.split(";")[0])
            .join("; ");
          const keys = await fetch(new URL("/portal/api/keys", signIn), { headers: { cookie: cookies } });
          expect(keys.status).toBe(200);
          expect(JSON.stringify(await keys.json())).toContain(state.keyId);
        } finally {
          child.kill("SIGTERM");
        }
        expect(await exited).toBe(0);
      });
  });
}
