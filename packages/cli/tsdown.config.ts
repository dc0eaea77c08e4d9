/** The library build of every package, plus the `flux` binary's entry (ESM only: it awaits at top level). */
import { defineConfig } from "tsdown";
import { packageBuilds } from "../../tsdown.config.ts";

export default defineConfig(() =>
  packageBuilds({ bin: { entry: { main: "./src/main.ts" }, format: ["esm"], dts: false } }),
);
