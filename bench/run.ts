/**
 * `pnpm bench [name]`: runs every bench/*.bench.ts (or the one named) in its own process, one after
 * the other, so they do not compete for the two cores.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv[2];
/** Long scenarios (minutes each) run only when named, or with `pnpm bench all`. */
const LONG = new Set(["soak.bench.ts", "scale.bench.ts", "cluster.bench.ts", "usage-partitions.bench.ts"]);
const files = readdirSync(here)
  .filter((file) => file.endsWith(".bench.ts"))
  .filter((file) => (wanted === "all" ? true : wanted ? file === `${wanted}.bench.ts` : !LONG.has(file)))
  .sort();
if (!wanted)
  console.log(
    `(long scenarios run only when named: ${[...LONG].map((f) => f.replace(".bench.ts", "")).join(", ")}, or \`pnpm bench all\`)`,
  );
if (files.length === 0) {
  console.error(`no benchmark named ${wanted}`);
  process.exit(1);
}
let failed = false;
for (const file of files) {
  console.log(`\n# ${file}`);
  const result = spawnSync(
    process.execPath,
    // --expose-gc: the memory benchmark settles the heap before each reading.
    ["--expose-gc", "--import", "tsx", "--conditions=source", join(here, file), ...process.argv.slice(3)],
    {
      stdio: "inherit",
    },
  );
  failed ||= result.status !== 0;
}
process.exit(failed ? 1 : 0);
