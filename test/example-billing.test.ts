/**
 * examples/billing as a user runs it: a signed subscription event upgrades an org and its next
 * request gets the new limits.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";

function run(entry: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", entry], {
      env: { ...process.env, DATABASE_URL: "" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("examples/billing", () => {
  it(
    "upgrades the org from a signed event; the next request has the Pro limits",
    { timeout: 120_000 },
    async () => {
      const { code, stdout, stderr } = await run("examples/billing/src/main.ts");
      expect(code, stderr).toBe(0);
      const line = (name: string) => stdout.split("\n").find((l) => l.startsWith(`${name}:`)) ?? "";
      expect(JSON.parse(line("before").slice(7))).toMatchObject({ plan: "starter", burst: 5 });
      expect(line("webhook")).toBe('webhook: 200 {"received":true,"outcome":"applied"}');
      expect(JSON.parse(line("after").slice(6))).toMatchObject({
        plan: "pro",
        burst: 100,
        quota: { limit: 1_000_000 },
        entitlements: ["bulk_export"],
      });
      expect(line("audit")).toContain('org.plan_changed {"type":"system","id":"stripe"}');
    },
  );
});
