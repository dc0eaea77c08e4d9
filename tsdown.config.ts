/**
 * The build of every published package (`pnpm build`, run in each package's folder): ESM and
 * CommonJS side by side (`.mjs`/`.cjs`), each with its own declarations (`.d.mts`/`.d.cts`), so
 * Node, bundlers and TypeScript in any `moduleResolution` find a file of the right kind.
 *
 * The entries are the `source` conditions of the package's `exports` (the TypeScript files the
 * workspace runs directly): `"."` builds `dist/index.*`, `"./testing"` builds `dist/testing.*`.
 * Everything in `dependencies` and `peerDependencies` stays an import; only the package's own
 * code (with core's generated Prisma client) is bundled.
 */
import { copyFileSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { defineConfig, type UserConfig } from "tsdown";

/** `{ index: "./src/index.ts", testing: "./src/testing/fake-stripe.ts" }` from `exports`. */
export function exportEntries(cwd: string = process.cwd()): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(cwd, "package.json"), "utf8")) as {
    exports?: Record<string, string | { source?: string }>;
  };
  const entries: Record<string, string> = {};
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    if (typeof target === "string" || typeof target.source !== "string") continue;
    entries[subpath === "." ? "index" : subpath.replace(/^\.\//, "")] = target.source;
  }
  if (Object.keys(entries).length === 0) throw new Error(`no "source" export in ${cwd}/package.json`);
  return entries;
}

/** What every build shares. */
export const packageBuild: UserConfig = {
  // One declaration build, written twice: TypeScript reads a `.d.cts` as CommonJS and a `.d.mts`
  // as ESM, and the same declarations are right for both halves (attw checks each).
  format: { esm: {}, cjs: { dts: false } },
  dts: true,
  platform: "node",
  target: "node20.15",
  tsconfig: "tsconfig.build.json",
  fixedExtension: true,
  sourcemap: false,
  // CommonJS gets named exports, plus `default` where a package has one (the Fastify plugin:
  // `require("@flux-keys/fastify").default`), as rolldown would choose anyway; said, not warned.
  outputOptions: { exports: "named" },
  // dist is emptied once before all builds (below): the builds of one package run side by side.
  clean: false,
  // scripts/check-packages.ts lints the packed tarballs, which is what users get.
  publint: false,
  attw: false,
  // The declaration build of core (its Prisma client's types) is slow; that is expected.
  checks: { pluginTimings: false },
  hooks: {
    "build:done": ({ options }) => {
      for (const file of readdirSync(options.outDir)) {
        if (file.endsWith(".d.mts")) {
          copyFileSync(join(options.outDir, file), join(options.outDir, file.replace(/\.d\.mts$/, ".d.cts")));
        }
      }
    },
  },
};

/**
 * One build per entry: with several entries in one build, rolldown shares chunks between them,
 * and its CommonJS output then has one entry re-export the runtime helpers of the other and load
 * it (`@flux-keys/stripe` loading `./testing.cjs`).
 */
export function packageBuilds(extra: Record<string, UserConfig> = {}): UserConfig[] {
  rmSync(join(process.cwd(), "dist"), { recursive: true, force: true });
  const builds = Object.entries(exportEntries()).map(([name, source]) => ({
    ...packageBuild,
    entry: { [name]: source },
  }));
  return [
    ...builds,
    ...Object.entries(extra).map(([name, config]) => ({ ...packageBuild, ...config, name })),
  ];
}

export default defineConfig(() => packageBuilds());
