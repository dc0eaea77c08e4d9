/** Spawns the real `flux` binary (bin/flux.mjs) and collects its output and exit code. */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../packages/cli/bin/flux.mjs", import.meta.url));

export interface FluxRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a spawned `flux`: nothing that could point it at another store. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name === "DATABASE_URL" || name === "REDIS_URL" || name.startsWith("FLUX_")) delete env[name];
  }
  return { ...env, ...extra };
}

export function flux(args: string[], options: { env?: Record<string, string> } = {}): Promise<FluxRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: cleanEnv(options.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs `flux … --json` and parses stdout; fails with stderr when the exit code is not 0. */
export async function fluxJson<T = unknown>(args: string[]): Promise<T> {
  const result = await flux([...args, "--json"]);
  if (result.code !== 0) throw new Error(`flux ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

export const SECRET_PATTERN = /^flux_(live|test)_[0-9A-Za-z]{49}$/;
