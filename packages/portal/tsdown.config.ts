/**
 * The package build: the shared one (../../tsdown.config.ts), after bundling the front end
 * (scripts/bundle-client.mjs), so the tarball carries the script and styles it serves.
 */
import { execFileSync } from "node:child_process";
import { defineConfig } from "tsdown";
import { packageBuilds } from "../../tsdown.config.ts";

export default defineConfig(() => {
  execFileSync(process.execPath, ["scripts/bundle-client.mjs"], { stdio: "inherit" });
  return packageBuilds();
});
