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

/** A port something else already listens on, as when the demo's default port is taken. */
function busyPort(): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      resolve({ port, close: () => new Promise<void>((done) => server.close(() => done())) });
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

  function start(entry: string, args: string[], schema: string, port: number): ChildProcess {
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
    return child;
  }

  it.each(EXAMPLES)(
    "$name exits with the listen error, and no welcome, when its port is taken",
    async ({ entry, args }) => {
      const { schema, drop } = await freshSchema();
      const taken = await busyPort();
      try {
        const child = start(entry, args, schema, taken.port);
        let stdout = "";
        let stderr = "";
        child.stdout?.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
        });
        child.stderr?.on("data", (chunk: Buffer) => {
          stderr += chunk.toString();
        });
        const code = await new Promise<number | null>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`still running; printed: ${stdout}`)), 30_000);
          child.once("exit", (exitCode) => {
            clearTimeout(timer);
            resolve(exitCode);
          });
        });
        expect(code).not.toBe(0);
        expect(stderr).toContain("EADDRINUSE");
        expect(stdout).not.toContain("listening on");
        expect(stdout).not.toContain("Demo key");
      } finally {
        await taken.close();
        await drop();
      }
    },
  );

  it.each(EXAMPLES)("$name serves the events API and flushes usage on SIGTERM", async ({ entry, args }) => {
    const { schema, drop } = await freshSchema();
    try {
      // PORT=0: the example binds a free port and prints it (a port picked here and freed first
      // could be taken by another test before the example binds it).
      const child = start(entry, args, schema, 0);
      const [, base, secret] = await waitForOutput(
        child,
        /listening on (http:\/\/127\.0\.0\.1:[1-9][0-9]*)\n\nDemo key \(shown once\): (flux_live_[0-9A-Za-z]{49})/,
        30_000,
      );
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
