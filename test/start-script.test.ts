/**
 * The demo as a user runs it: the README's demo command (what follows `pnpm install &&` in its
 * first block), and `pnpm start`, each in its own process group as a terminal runs a foreground
 * job, on PostgreSQL so that what it served can be counted afterwards. SIGTERM to the process
 * (what a supervisor does) and Ctrl-C (SIGINT to the whole group, what a terminal does) both stop
 * the server (nothing is left listening) with usage flushed. The README's command then exits 0
 * with no failure report; pnpm ends by the signal (as a shell reports a Ctrl-C: 130), never as a
 * failed run (exit 1) of an app that exited 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, until } from "./support/faults-services.js";
import { DATABASE_URL, demoOrgCalls, freshSchema, hasPostgres } from "./support/services.js";

const ROOT = new URL("..", import.meta.url).pathname;

/** The README's demo command: the first block's first command line, after its `pnpm install &&`. */
function readmeDemoCommand(): string[] {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const line = block.split("\n").find((l) => l.includes("pnpm install &&")) ?? "";
  const demo = line.split("pnpm install &&")[1]?.trim() ?? "";
  // Run as a terminal runs it: its words, no shell in between (the shell waits; the job gets the signal).
  expect(demo).toMatch(/^[\w@=./:-]+( [\w@=./:-]+)*$/);
  return demo.split(" ");
}

function startDemo(
  command: string[],
  port: number,
  schema: string,
): { child: ChildProcess; output: () => string } {
  let output = "";
  const [bin, ...args] = command as [string, ...string[]];
  const child = spawn(bin, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      DATABASE_URL: `${DATABASE_URL}?schema=${schema}`,
      REDIS_URL: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}

async function listening(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!hasPostgres)("the demo command", () => {
  const groups: number[] = [];
  afterAll(() => {
    for (const pgid of groups) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {}
    }
  });

  it.each([
    { what: "the README's command", readme: true, how: "SIGTERM", signal: "SIGTERM" as const, group: false },
    { what: "the README's command", readme: true, how: "Ctrl-C", signal: "SIGINT" as const, group: true },
    { what: "pnpm start", readme: false, how: "SIGTERM to pnpm", signal: "SIGTERM" as const, group: false },
    { what: "pnpm start", readme: false, how: "Ctrl-C", signal: "SIGINT" as const, group: true },
  ])("$what stops the server and flushes usage on $how", async ({ readme, signal, group }) => {
    const { schema, drop } = await freshSchema();
    try {
      const port = await freePort();
      const command = readme ? readmeDemoCommand() : ["pnpm", "start"];
      const { child, output } = startDemo(command, port, schema);
      groups.push(child.pid as number);
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal })),
      );
      await until(() => /Demo key \(shown once\): flux_live_/.test(output()), 60_000, "the demo key");
      const secret = /Demo key \(shown once\): (flux_live_[0-9A-Za-z]{49})/.exec(output())?.[1] as string;
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`http://127.0.0.1:${port}/v1/events`, {
          headers: { Authorization: `Bearer ${secret}` },
        });
        expect(response.status).toBe(200);
      }
      process.kill(group ? -(child.pid as number) : (child.pid as number), signal);
      const { code, signal: endedBy } = await exited;
      if (readme) {
        // What the README promises: a clean stop, reported as one.
        expect({ code, endedBy }, output()).toEqual({ code: 0, endedBy: null });
        expect(output()).not.toMatch(/ELIFECYCLE|Command failed|ERR_/);
      } else {
        // pnpm ends by the signal it was sent (a shell shows 130 or 143), never as a failed run
        // (exit 1) of an app that exited 0.
        expect(code === 0 || endedBy === signal, output()).toBe(true);
      }
      // Whatever pnpm does with the signal, the server it started goes too, and flushes first.
      await until(async () => !(await listening(port)), 10_000, "the server gone");
      await until(async () => (await demoOrgCalls(schema)) === 3, 10_000, "3 calls in usage");
    } finally {
      await drop();
    }
  });
});
