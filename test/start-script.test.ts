/**
 * `pnpm start`, as a user runs it: the README's demo command in its own process group, on
 * PostgreSQL so that what it served can be counted afterwards. SIGTERM sent to the pnpm process
 * (what a supervisor does) and Ctrl-C (SIGINT to the whole group, what a terminal does) both stop
 * the server (nothing is left listening) with usage flushed, and pnpm ends by that signal (as a
 * shell reports a Ctrl-C: 130), not as a failed run (exit 1) of an app that exited 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, until } from "./support/faults-services.js";
import { DATABASE_URL, demoOrgCalls, freshSchema, hasPostgres } from "./support/services.js";

const ROOT = new URL("..", import.meta.url).pathname;

function startDemo(port: number, schema: string): { child: ChildProcess; output: () => string } {
  let output = "";
  const child = spawn("pnpm", ["start"], {
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

describe.skipIf(!hasPostgres)("pnpm start", () => {
  const groups: number[] = [];
  afterAll(() => {
    for (const pgid of groups) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {}
    }
  });

  it.each([
    { how: "SIGTERM to the pnpm process", signal: "SIGTERM" as const, group: false },
    { how: "Ctrl-C (SIGINT to the process group)", signal: "SIGINT" as const, group: true },
  ])("stops the server and flushes usage on $how", async ({ signal, group }) => {
    const { schema, drop } = await freshSchema();
    try {
      const port = await freePort();
      const { child, output } = startDemo(port, schema);
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
      // pnpm ends by the signal it was sent (a shell shows 130 or 143), never as a failed run
      // (exit 1) of an app that exited 0.
      expect(code === 0 || endedBy === signal, output()).toBe(true);
      // Whatever pnpm does with the signal, the server it started goes too, and flushes first.
      await until(async () => !(await listening(port)), 10_000, "the server gone");
      await until(async () => (await demoOrgCalls(schema)) === 3, 10_000, "3 calls in usage");
    } finally {
      await drop();
    }
  });
});
