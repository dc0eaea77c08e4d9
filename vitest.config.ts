import { defineConfig } from "vitest/config";
import { PROJECTS, TEST_FILES } from "./test/support/projects.js";

const named = Object.values(PROJECTS).flat();

export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    // CI asks for a JSON report (counted by .ci/run) through the environment: pnpm would take a
    // --reporter flag for itself.
    reporters: process.env.FLUX_TEST_JSON_REPORT
      ? ["default", ["json", { outputFile: process.env.FLUX_TEST_JSON_REPORT }]]
      : ["default"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites share one PostgreSQL and one Redis; each uses its own schema and key prefix.
    fileParallelism: true,
    maxWorkers: 2,
    // What each file needs to run (test/support/projects.ts): `pnpm test` runs every project,
    // `pnpm test:unit` (`--project unit`) only the ones without a database.
    projects: [
      ...Object.entries(PROJECTS).map(([name, include]) => ({
        extends: true as const,
        test: { name, include: [...include] },
      })),
      { extends: true as const, test: { name: "integration", include: TEST_FILES, exclude: named } },
    ],
  },
});
