/** Every test file is in exactly one Vitest project, and every file a project names exists. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECTS } from "./support/projects.js";

const ROOT = join(import.meta.dirname, "..");

/** Test files under `dir` (relative to the root), recursively. */
function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...testFiles(path));
    else if (entry.name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const packages = readdirSync(join(ROOT, "packages")).filter((name) =>
  existsSync(join(ROOT, "packages", name, "test")),
);
const all = [...packages.flatMap((name) => testFiles(`packages/${name}/test`)), ...testFiles("test")].sort();

describe("vitest projects", () => {
  it("name only files that exist, each in one project", () => {
    const named = Object.values(PROJECTS).flat();
    expect(named.filter((file) => !existsSync(join(ROOT, file)))).toEqual([]);
    expect(named.filter((file, i) => named.indexOf(file) !== i)).toEqual([]);
  });

  it("put every test file somewhere (the rest is integration)", () => {
    const named = new Set<string>(Object.values(PROJECTS).flat());
    const integration = all.filter((file) => !named.has(file));
    expect(all.length).toBeGreaterThan(60);
    expect(integration.length + named.size).toBe(all.length);
    expect(integration).toContain("packages/express/test/express.test.ts");
  });
});
