/** Glue between commander and the commands: every action gets a Session, closed afterwards. */
import type { Page } from "@flux-keys/core";
import type { Command } from "commander";
import type { CliIo } from "./io.js";
import { type GlobalFlags, Session } from "./session.js";

export type Handler<O> = (session: Session, options: O, args: string[]) => Promise<void>;

export function action<O>(io: CliIo, handler: Handler<O>) {
  return async (...params: unknown[]): Promise<void> => {
    const command = params[params.length - 1] as Command;
    const args = params.slice(0, -2) as string[];
    const session = new Session(io, command.optsWithGlobals() as GlobalFlags);
    try {
      await handler(session, command.opts() as O, args);
    } finally {
      await session.close();
    }
  };
}

export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join("\n")}\n`;
}

export interface PageFlags {
  limit?: number;
  cursor?: string;
  all?: boolean;
}

/** One page (`--limit`, `--cursor`), or every page with `--all`. */
export async function paged<T>(
  session: Session,
  flags: PageFlags,
  fetch: (cursor: string | null, limit: number | undefined) => Promise<Page<T>>,
): Promise<Page<T>> {
  if (!flags.all) {
    const page = await fetch(flags.cursor ?? null, flags.limit);
    if (page.nextCursor !== null) session.note(`More results: add --cursor ${page.nextCursor} (or --all).`);
    return page;
  }
  const items: T[] = [];
  let cursor: string | null = flags.cursor ?? null;
  do {
    const page = await fetch(cursor, flags.limit ?? 500);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return { items, nextCursor: null };
}
