// Generates the Prisma client into src/generated/prisma (not committed).
// `prisma generate` needs no schema engine, but the CLI insists that one is configured: on a
// machine without network access it would try to download it. Any executable satisfies the check.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const cli = join(dirname(require.resolve("prisma/package.json")), "build", "index.js");
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY) env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
if (!existsSync(cli)) throw new Error(`prisma CLI not found at ${cli}`);
execFileSync(process.execPath, [cli, "generate", "--schema", join(root, "prisma", "schema.prisma")], {
  cwd: root,
  env,
  stdio: ["ignore", "inherit", "inherit"],
});
