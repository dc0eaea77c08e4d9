/**
 * Stored strings reach the operator's terminal: a key named or revoked through the portal with
 * `ESC]0;…BEL ESC[2J` must come out escaped in human output, and exactly as stored in JSON.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFlux } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliIo } from "../src/io.js";
import { run } from "../src/program.js";
import { printable, printableLines } from "../src/terminal.js";

const HOSTILE = "ci\u001b]0;pwned\u0007\u001b[2J\r\nFAKE ROW\u009b31m\u202eevil";
// biome-ignore lint/suspicious/noControlCharactersInRegex: what must never reach the terminal
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

async function cli(argv: string[]) {
  const out = { stdout: "", stderr: "" };
  const io: CliIo = {
    stdout: {
      write: (chunk: string) => {
        out.stdout += chunk;
      },
    },
    stderr: {
      write: (chunk: string) => {
        out.stderr += chunk;
      },
    },
    env: {},
  };
  const code = await run(argv, io);
  return { code, ...out };
}

describe("printable", () => {
  it("escapes C0, DEL, C1 and bidi controls, and keeps everything else", () => {
    expect(printable(HOSTILE)).toBe("ci\\x1b]0;pwned\\x07\\x1b[2J\\r\\nFAKE ROW\\x9b31m\\u202eevil");
    expect(printableLines("a\u001b[2J\nb")).toBe("a\\x1b[2J\nb");
    expect(printable("Acme Inc. — ünïcödé 🚀 …")).toBe("Acme Inc. — ünïcödé 🚀 …");
  });
});

describe("flux human output with hostile stored strings", { timeout: 60_000 }, () => {
  let dir: string;
  let args: string[];
  let activeId: string;
  let revokedId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "flux-cli-terminal-"));
    args = ["--pglite", dir];
    const flux = await createFlux({ database: { pglite: dir }, redis: null, migrate: true });
    try {
      await flux.orgs.create({ id: "acme", name: HOSTILE });
      const active = await flux.keys
        .create()
        .forOrg("acme")
        .named(HOSTILE)
        .withMetadata({ note: HOSTILE })
        .createdBy({ type: "user", id: HOSTILE })
        .issue();
      activeId = active.key.id;
      const other = await flux.keys.create().forOrg("acme").named("other").issue();
      revokedId = other.key.id;
      await flux.keys.revoke(revokedId, { reason: HOSTILE, actor: { type: "user", id: HOSTILE } });
    } finally {
      await flux.close();
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("escapes them in keys list, keys show, orgs show and audit list", async () => {
    const outputs = [
      await cli(["keys", "list", "--org", "acme", ...args]),
      await cli(["keys", "show", activeId, ...args]),
      await cli(["keys", "show", revokedId, ...args]),
      await cli(["keys", "revoke", revokedId, ...args]),
      await cli(["orgs", "show", "acme", ...args]),
      await cli(["orgs", "list", ...args]),
      await cli(["audit", "--org", "acme", ...args]),
    ];
    for (const output of outputs) {
      expect(output.code, output.stderr).toBe(0);
      expect(output.stdout).not.toMatch(CONTROL);
      expect(output.stderr).not.toMatch(CONTROL);
    }
    const [list, shown, revoked] = outputs;
    expect(list!.stdout).toContain("ci\\x1b]0;pwned\\x07\\x1b[2J\\r\\nFAKE ROW");
    // The name's line break is escaped, so it cannot forge a row: a header and two keys.
    expect(list!.stdout.trimEnd().split("\n")).toHaveLength(3);
    expect(shown!.stdout).toContain("\\x1b[2J");
    expect(revoked!.stdout).toContain("(ci\\x1b]0;pwned");
  });

  it("keeps JSON output exact", async () => {
    const list = await cli(["keys", "list", "--org", "acme", "--json", ...args]);
    expect(list.code).toBe(0);
    const page = JSON.parse(list.stdout) as { items: Array<{ name: string }> };
    expect(page.items.map((k) => k.name)).toContain(HOSTILE);
    const shown = await cli(["keys", "show", revokedId, "--json", ...args]);
    expect((JSON.parse(shown.stdout) as { revokedReason: string }).revokedReason).toBe(HOSTILE);
  });
});
