/**
 * Exit codes and the one line every failure prints. Scripts branch on the code:
 * 0 success, 1 usage error (bad flags or input), 2 not found or refused, 3 store unavailable.
 */
import { FluxConfigError, FluxError } from "@flux-keys/core";
import { CommanderError } from "commander";
import { printable } from "./terminal.js";

export const EXIT = { ok: 0, usage: 1, refused: 2, unavailable: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A mistake in how the command was called, found by the CLI itself. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Something the CLI refuses to do in the current state (e.g. pending migrations). */
export class RefusedError extends Error {
  override readonly name = "RefusedError";
}

export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof UsageError || error instanceof CommanderError) return EXIT.usage;
  if (error instanceof RefusedError) return EXIT.refused;
  if (error instanceof FluxConfigError) {
    // A migration the database refused (changed after it was applied, or failing SQL) is not a
    // mistake in the command line: the database said no.
    return error.code === "migration_failed" ? EXIT.refused : EXIT.usage;
  }
  if (error instanceof FluxError) {
    if (error.code === "store_unavailable") return EXIT.unavailable;
    if (error.code === "invalid_request") return EXIT.usage;
    return EXIT.refused;
  }
  return EXIT.usage;
}

/** One line, never a secret: connection passwords and key-shaped strings are masked. */
export function describeError(error: unknown): string {
  if (error instanceof FluxError) return redact(`${error.detail} (${error.code})`);
  if (error instanceof FluxConfigError) return redact(`${error.message} (${error.code})`);
  if (error instanceof UsageError || error instanceof RefusedError) return redact(error.message);
  if (error instanceof Error)
    return redact(`unexpected error: ${error.message} (run with --debug for details)`);
  return "unexpected error (run with --debug for details)";
}

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:/@]*):([^\s@/]*)@/gi;
const KEY_SHAPED = /\b[a-z][a-z0-9]{0,15}_(?:live|test)_[0-9A-Za-z]{20,}\b/g;

export function redact(text: string): string {
  return printable(
    text
      .replace(URL_CREDENTIALS, "$1$2:***@")
      .replace(KEY_SHAPED, "[redacted key]")
      .replace(/\s*\n\s*/g, " ")
      .trim(),
  );
}
