/**
 * The runnable examples, as a user starts them: a real process on DATABASE_URL, real HTTP, then
 * SIGTERM. Every served call must be in usage after the process exits (flushed on shutdown).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { DATABASE_URL, demoOrgCalls, freshSchema, hasPostgres } from "./support/services.js";

const EXAMPLES = [
  { name: "express", entry: "examples/express-app/src/main.ts", args: [] },
  { name: "fastify", entry: "examples/fastify-app/src/main.ts", args: [] },
  { name: "nest (express)", entry: "examples/nest-app/src/main.ts", args: ["express"] },
  { name: "nest (fastify)", entry: "examples/nest-app/src/main.ts", args: ["fastify"] },
  {
    name: "nest (express, forRootAsync)",
    entry: "examples/nest-app/src/main.ts",
    args: ["express", "forRootAsync"],
  },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`no match for ${pattern} in: ${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = pattern.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        resolve(match);
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited with ${code} before ${pattern}: ${output}`)));
  });
}

describe.skipIf(!hasPostgres)("examples", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  });

  it.each(EXAMPLES)("$name serves the events API and flushes usage on SIGTERM", async ({ entry, args }) => {
    const { schema, drop } = await freshSchema();
    try {
      const port = await freePort();
      const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", entry, ...args], {
        env: {
          ...process.env,
          DATABASE_URL: `${DATABASE_URL}?schema=${schema}`,
          REDIS_URL: "",
          PORT: String(port),
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(child);
      const [, secret] = await waitForOutput(
        child,
        /Demo key \(shown once\): (flux_live_[0-9A-Za-z]{49})/,
        30_000,
      );
      const base = `http://127.0.0.1:${port}`;
      const auth = { Authorization: `Bearer ${secret}` };

      expect((await fetch(`${base}/v1/events`)).status).toBe(401);
      const created = await fetch(`${base}/v1/events`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ type: "deploy" }),
      });
      expect(created.status).toBe(201);
      const listed = await fetch(`${base}/v1/events`, { headers: auth });
      expect(listed.status).toBe(200);
      expect(((await listed.json()) as { data: unknown[] }).data).toHaveLength(1);
      expect((await fetch(`${base}/v1/exports`, { method: "POST", headers: auth })).status).toBe(202);
      for (let i = 0; i < 7; i++)
        expect((await fetch(`${base}/v1/events`, { headers: auth })).status).toBe(200);

      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal })),
      );
      child.kill("SIGTERM");
      const { code, signal } = await exited;
      // Nest's shutdown hooks end by raising the signal again (its documented behaviour).
      if (entry.includes("nest-app")) expect(code === 0 || signal === "SIGTERM").toBe(true);
      else expect(code).toBe(0);

      expect(await demoOrgCalls(schema)).toBe(10);
    } finally {
      await drop();
    }
  });
});
