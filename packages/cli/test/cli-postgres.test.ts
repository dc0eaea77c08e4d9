import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { flux } from "../../../test/support/cli.js";
import { cliSuite, TARGETS } from "../../../test/support/cli-scenario.js";

cliSuite(TARGETS.postgres, { portal: false, exitCodes: true });

describe("flux without a working store", { timeout: 60_000 }, () => {
  it("exits 3 for an unreachable database, without the URL's password or a stack trace", async () => {
    const result = await flux([
      "keys",
      "list",
      "--org",
      "acme",
      "--database",
      "postgresql://flux:hunter2-pw@127.0.0.1:1/flux",
    ]);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "flux: A backing store is unavailable; try again shortly. (store_unavailable)\n",
    );
  });

  it("exits 1 for a usage error, and 0 for --help with examples", async () => {
    const help = await flux(["keys", "create", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: flux keys create [options]");
    expect(help.stdout).toContain("Examples:");

    const unknown = await flux(["keys", "create", "--org", "acme", "--colour", "blue", "--pglite", tmpdir()]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("flux: unknown option '--colour' (see --help)\n");
  });
});
