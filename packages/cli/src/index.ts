export { describeError, EXIT, type ExitCode, exitCodeOf, RefusedError, UsageError } from "./cli-errors.js";
export type { CliIo, OutputStream } from "./io.js";
export { createProgram, run } from "./program.js";
export { fluxOptions, type GlobalFlags } from "./session.js";
