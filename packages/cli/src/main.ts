/** The `flux` executable's entry point (bin/flux.mjs loads it from dist, or from src in the workspace). */
import { run } from "./program.js";

// `flux keys list | head -1`: the reader went away; that is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const code = await run(process.argv.slice(2));
process.exitCode = code;
// Exit once our output is written rather than wait for the store libraries' last timers to wind down.
process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
