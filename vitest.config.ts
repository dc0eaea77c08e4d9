import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    // CI asks for a JSON report (counted by .ci/run) through the environment: pnpm would take a
    // --reporter flag for itself.
    reporters: process.env.FLUX_TEST_JSON_REPORT
      ? ["default", ["json", { outputFile: process.env.FLUX_TEST_JSON_REPORT }]]
      : ["default"],
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites share one PostgreSQL and one Redis; each uses its own schema and key prefix.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
