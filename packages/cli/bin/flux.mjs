#!/usr/bin/env node
// `flux`: runs the compiled CLI (dist/main.mjs), as a published package does. In the workspace,
// where src/ is present and tsx is installed, it runs the TypeScript sources instead, with the
// "source" export condition so @flux-keys/core resolves to its sources too: no build step, and
// never a stale dist. Node cannot add an export condition at run time, hence the child process.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const source = fileURLToPath(new URL("../src/main.ts", import.meta.url));
let tsx;
if (existsSync(source) && process.env.FLUX_CLI_USE_DIST !== "1") {
  try {
    tsx = import.meta.resolve("tsx");
  } catch {
    tsx = undefined;
  }
}

if (tsx === undefined) {
  await import("../dist/main.mjs");
} else {
  const child = spawn(
    process.execPath,
    ["--conditions=source", "--import", tsx, source, ...process.argv.slice(2)],
    { stdio: "inherit" },
  );
  // The terminal sends Ctrl+C to the whole process group; a `kill <pid>` reaches only us.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => child.kill(signal));
  }
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
