/**
 * `pnpm check:packages` (CI runs it before the tests): builds and packs every package, lints the
 * tarballs (publint, are-the-types-wrong) and runs them in throwaway apps outside the workspace.
 * The same checks run as test/packages.test.ts; see scripts/packages/check.ts.
 */
import { CHECKS, CheckContext, packPackages } from "./packages/check.js";

const started = Date.now();
const seconds = (from: number): string => `${((Date.now() - from) / 1000).toFixed(1)} s`;
const packed = await packPackages((line) => console.log(`  ${line}`));
console.log(
  `${packed.cached ? "reused the tarballs of these sources" : "built and packed"} (${seconds(started)}): ${packed.dir}`,
);

const context = new CheckContext(packed);
const failures: string[] = [];
for (const check of CHECKS) {
  const from = Date.now();
  try {
    await check.run(context);
    console.log(`✓ ${check.name} (${seconds(from)})`);
  } catch (error) {
    failures.push(check.name);
    console.log(`✗ ${check.name} (${seconds(from)})\n${(error as Error).message}\n`);
  }
}
console.log(
  `packages: ${CHECKS.length - failures.length} of ${CHECKS.length} checks passed in ${seconds(started)}`,
);
if (failures.length > 0) {
  console.log(`failed:\n${failures.map((name) => `  ${name}`).join("\n")}`);
  process.exitCode = 1;
}
