/**
 * The packages as a user outside this monorepo gets them: packed with `pnpm pack`, linted
 * (publint, are-the-types-wrong), installed into throwaway apps outside the workspace (Express ESM
 * JavaScript, Fastify TypeScript 6 nodenext, Nest CommonJS on TypeScript 5.9, a TypeScript 5.9/6.0
 * × node10/nodenext/bundler matrix) that compile and serve real HTTP. The checks are those of
 * `pnpm check:packages` (scripts/packages/check.ts); CI runs that first, so the build and the
 * installs here come from its cache.
 */
import { beforeAll, describe, it } from "vitest";
import { CHECKS, CheckContext, packPackages } from "../scripts/packages/check.js";

describe("packed packages", () => {
  let context: CheckContext;

  beforeAll(async () => {
    context = new CheckContext(await packPackages());
  }, 600_000);

  for (const check of CHECKS) {
    it(check.name, () => check.run(context), check.timeoutMs);
  }
});
