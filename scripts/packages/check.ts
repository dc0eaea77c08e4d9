/**
 * What a user outside this monorepo gets: every package built, packed with `pnpm pack` and
 * checked as a tarball (publint, are-the-types-wrong), then installed from its tarball into
 * throwaway apps outside the workspace (scripts/packages/apps) that compile and serve real HTTP.
 *
 * Used by scripts/check-packages.ts (CI, before the tests) and test/packages.test.ts. Builds and
 * installs are cached under the system temp folder by a hash of everything that goes into the
 * tarballs, so the second caller on the same sources only lints, compiles and runs.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const APPS = join(ROOT, "scripts", "packages", "apps");
const BIN = join(ROOT, "node_modules", ".bin");

/** The published packages, core first (the others' declarations import its built ones). */
export const PACKAGES = [
  "core",
  "portal",
  "cli",
  "express",
  "fastify",
  "nestjs",
  "openfeature",
  "stripe",
] as const;
export type PackageDir = (typeof PACKAGES)[number];

/** The throwaway apps that run a server (the types matrix only compiles and loads). */
export const SERVER_APPS = ["express-esm-js", "fastify-ts-nodenext", "nest-cjs-ts5"] as const;
export type ServerApp = (typeof SERVER_APPS)[number];

export interface Packed {
  /** The cache folder of this build (outside the workspace). */
  dir: string;
  /** `@flux-keys/core` → absolute path of its tarball. */
  tarballs: Record<string, string>;
  /** Whether this call built and packed, or found the tarballs of the same sources. */
  cached: boolean;
}

export interface CommandResult {
  ok: boolean;
  output: string;
}

/** Everything that ends up in a tarball, hashed: the package folders less their build output. */
export function sourceHash(): string {
  const hash = createHash("sha256");
  const skip = new Set(["node_modules", "dist", "generated", "test"]);
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (skip.has(entry.name)) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) hash.update(relative(ROOT, path)).update("\0").update(readFileSync(path));
    }
  };
  for (const name of PACKAGES) walk(join(ROOT, "packages", name));
  for (const file of ["tsdown.config.ts", "pnpm-lock.yaml"]) hash.update(readFileSync(join(ROOT, file)));
  return hash.digest("hex").slice(0, 16);
}

function cacheRoot(): string {
  return join(tmpdir(), "flux-keys-packages");
}

async function exec(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
    return { ok: true, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? failed.message}` };
  }
}

async function mustExec(
  command: string,
  args: string[],
  cwd: string,
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  const result = await exec(command, args, cwd, env);
  if (!result.ok) throw new Error(`${command} ${args.join(" ")} (in ${cwd}) failed:\n${result.output}`);
  return result.output;
}

/**
 * Builds every package with tsdown and packs it with `pnpm pack` (so `publishConfig` and
 * `workspace:` ranges are applied as on publish), unless tarballs of the same sources exist.
 * Core's Prisma client is generated only when missing: regenerating it under running tests
 * would pull the files from under them (`pnpm install` generates it).
 */
export async function packPackages(log: (line: string) => void = () => {}): Promise<Packed> {
  const dir = join(cacheRoot(), sourceHash());
  const tarballDir = join(dir, "tarballs");
  const tarballsOf = (): Record<string, string> =>
    Object.fromEntries(
      PACKAGES.map((name) => {
        const pkg = JSON.parse(readFileSync(join(ROOT, "packages", name, "package.json"), "utf8"));
        const file = `${pkg.name.replace("@", "").replace("/", "-")}-${pkg.version}.tgz`;
        return [pkg.name as string, join(tarballDir, file)];
      }),
    );
  if (existsSync(join(tarballDir, "done"))) return { dir, tarballs: tarballsOf(), cached: true };

  // Builds of other sources go once they are an hour old (another checkout may still be using one).
  for (const other of existsSync(cacheRoot()) ? readdirSync(cacheRoot()) : []) {
    const path = join(cacheRoot(), other);
    if (path !== dir && Date.now() - statSync(path).mtimeMs > 3_600_000)
      rmSync(path, { recursive: true, force: true });
  }
  const core = join(ROOT, "packages", "core");
  if (!existsSync(join(core, "src", "generated", "prisma", "client.ts"))) {
    log("generating the Prisma client");
    await mustExec(process.execPath, ["scripts/generate.mjs"], core);
  }
  const build = async (name: PackageDir): Promise<void> => {
    const started = Date.now();
    await mustExec(join(BIN, "tsdown"), ["--logLevel", "warn"], join(ROOT, "packages", name));
    log(`built ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  };
  await build("core");
  const rest = PACKAGES.filter((name) => name !== "core");
  for (let i = 0; i < rest.length; i += 2) await Promise.all(rest.slice(i, i + 2).map(build));

  const staging = `${tarballDir}.${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  for (const name of PACKAGES) {
    await mustExec("pnpm", ["pack", "--pack-destination", staging], join(ROOT, "packages", name));
  }
  writeFileSync(join(staging, "done"), new Date().toISOString());
  rmSync(tarballDir, { recursive: true, force: true });
  renameSync(staging, tarballDir);
  return { dir, tarballs: tarballsOf(), cached: false };
}

/** `publint --strict` on a tarball: every file that `exports` names is in it, and more. */
export function publint(tarball: string): Promise<CommandResult> {
  return exec(join(BIN, "publint"), ["run", tarball, "--strict"], ROOT);
}

/** are-the-types-wrong on a tarball: types resolve, of the right module kind, under node10, node16 and bundler. */
export function attw(tarball: string): Promise<CommandResult> {
  return exec(join(BIN, "attw"), [tarball, "--format", "table-flipped"], ROOT);
}

/** The entries of a tarball, for assertions about what is (not) shipped. */
export async function tarballFiles(tarball: string): Promise<string[]> {
  const listing = await mustExec("tar", ["-tzf", tarball], ROOT);
  return listing
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => line.replace(/^package\//, ""));
}

/** The package.json inside a tarball, as npm would install it. */
export async function packedManifest(tarball: string): Promise<Record<string, unknown>> {
  return JSON.parse(await mustExec("tar", ["-xzOf", tarball, "package/package.json"], ROOT));
}

/** A hash of one app folder: its install is kept while neither it nor the tarballs change. */
function appHash(app: string): string {
  const hash = createHash("sha256");
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) hash.update(relative(APPS, path)).update("\0").update(readFileSync(path));
    }
  };
  walk(join(APPS, app));
  return hash.digest("hex").slice(0, 12);
}

/**
 * Copies an app outside the workspace, points its `"packed"` dependencies (and every package's
 * `@flux-keys/*` dependency, through `overrides`) at the tarballs and installs it with pnpm from
 * the npm registry (its store already holds most of it). Dependencies' install scripts do not
 * run, as in this workspace.
 */
export async function installApp(app: string, packed: Packed): Promise<string> {
  const dir = join(packed.dir, "apps", `${app}-${appHash(app)}`);
  if (existsSync(join(dir, "node_modules", ".flux-installed"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(APPS, app), dir, { recursive: true });
  const manifestPath = join(dir, "package.json");
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  for (const field of ["dependencies", "devDependencies"]) {
    for (const [name, range] of Object.entries<string>(manifest[field] ?? {})) {
      if (range !== "packed") continue;
      const tarball = packed.tarballs[name];
      if (tarball === undefined) throw new Error(`${app}: no tarball for ${name}`);
      manifest[field][name] = `file:${tarball}`;
    }
  }
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  const overrides = Object.entries(packed.tarballs)
    .map(([name, tarball]) => `  "${name}": "file:${tarball}"`)
    .join("\n");
  // Its own workspace root, so that pnpm looks no further up for settings.
  writeFileSync(join(dir, "pnpm-workspace.yaml"), `overrides:\n${overrides}\n`);
  await mustExec(
    "pnpm",
    ["install", "--prefer-offline", "--ignore-scripts", "--reporter", "append-only"],
    dir,
  );
  writeFileSync(join(dir, "node_modules", ".flux-installed"), new Date().toISOString());
  return dir;
}

/** The app's environment: no store of the workspace's shell leaks in (embedded PGlite only). */
function appEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ["DATABASE_URL", "REDIS_URL", "NODE_OPTIONS", "TS_NODE_PROJECT"]) delete env[name];
  return env;
}

/** `tsc -p <project>` of the given TypeScript install in an app folder. */
export function compile(
  dir: string,
  typescript: string,
  project: string,
  flags: readonly string[] = [],
): Promise<CommandResult> {
  const tsc = join(dir, "node_modules", typescript, "bin", "tsc");
  return exec(process.execPath, [tsc, "-p", project, ...flags], dir, appEnv());
}

/** Runs a script of an app folder with node. */
export function runNode(dir: string, args: string[]): Promise<CommandResult> {
  return exec(process.execPath, args, dir, appEnv());
}

export interface ServedRequests {
  withKey: { status: number; body: unknown };
  withoutKey: { status: number; contentType: string | null; body: unknown };
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

/**
 * Starts a server app (`node <entry>`), waits for its `FLUX_APP_READY` line, calls
 * `GET /v1/events` with the key it issued and without a key, then stops it with SIGTERM.
 * The key never leaves this function: failures report the app's output with it masked.
 */
export async function serveRequests(dir: string, entry: string, timeoutMs = 60_000): Promise<ServedRequests> {
  const child = spawn(process.execPath, [entry], {
    cwd: dir,
    env: appEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let secret: string | undefined;
  const masked = (): string => (secret === undefined ? output : output.split(secret).join("[key]"));
  const exited = new Promise<ServedRequests["exit"]>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  try {
    const ready = await new Promise<{ port: number; secret: string }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no FLUX_APP_READY within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        const line = /FLUX_APP_READY (\{.*\})/.exec(output);
        if (line?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(JSON.parse(line[1]));
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`exited (${code ?? signal}) before it was ready`));
      });
    });
    secret = ready.secret;
    const url = `http://127.0.0.1:${ready.port}/v1/events`;
    const authorized = await fetch(url, { headers: { authorization: `Bearer ${ready.secret}` } });
    const anonymous = await fetch(url);
    const result = {
      withKey: { status: authorized.status, body: await authorized.json() },
      withoutKey: {
        status: anonymous.status,
        contentType: anonymous.headers.get("content-type"),
        body: await anonymous.json(),
      },
    };
    child.kill("SIGTERM");
    const exit = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("did not stop on SIGTERM")), 15_000),
      ),
    ]);
    return { ...result, exit };
  } catch (error) {
    throw new Error(`${relative(tmpdir(), dir)}: ${(error as Error).message}\n${masked()}`);
  } finally {
    stop(child);
  }
}

function stop(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/** The TypeScript installs of the types matrix, with the flags each needs for node10. */
export const TYPESCRIPTS = {
  "5.9": { module: "typescript5", node10Flags: [] as string[] },
  // TypeScript 6 deprecates moduleResolution node10; projects that keep it say so.
  "6.0": { module: "typescript6", node10Flags: ["--ignoreDeprecations", "6.0"] },
} as const;
export const RESOLUTIONS = ["node10", "nodenext", "bundler"] as const;

/** Prepares the types matrix app: its consumer file also as `.cts` (nodenext from CommonJS). */
export async function installTypesMatrix(packed: Packed): Promise<string> {
  const dir = await installApp("types-matrix", packed);
  cpSync(join(dir, "src", "consumer.ts"), join(dir, "src", "consumer.cts"));
  return dir;
}

/** One check of the packed packages; `run` throws (node:assert) on a failure. */
export interface PackageCheck {
  name: string;
  timeoutMs: number;
  run(context: CheckContext): Promise<void>;
}

/** The packed tarballs, and each app installed once however many checks use it. */
export class CheckContext {
  private readonly installs = new Map<string, Promise<string>>();

  constructor(readonly packed: Packed) {}

  app(name: string): Promise<string> {
    let install = this.installs.get(name);
    if (install === undefined) {
      install = name === "types-matrix" ? installTypesMatrix(this.packed) : installApp(name, this.packed);
      this.installs.set(name, install);
    }
    return install;
  }

  tarball(name: PackageDir): string {
    const tarball = this.packed.tarballs[`@flux-keys/${name}`];
    assert.ok(tarball, `no tarball for ${name}`);
    return tarball;
  }
}

function exportTargets(
  value: unknown,
  conditions: string[] = [],
): Array<{ path: string; conditions: string[] }> {
  if (typeof value === "string") return [{ path: value, conditions }];
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, inner]) => exportTargets(inner, [...conditions, key]));
}

function withoutSource(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== "source")
      .map(([key, inner]) => [key, withoutSource(inner)]),
  );
}

async function checkManifest(context: CheckContext, name: PackageDir): Promise<void> {
  const tarball = context.tarball(name);
  const files = new Set(await tarballFiles(tarball));
  const manifest = await packedManifest(tarball);
  const workspace = JSON.parse(readFileSync(join(ROOT, "packages", name, "package.json"), "utf8"));
  assert.deepEqual(
    manifest.exports,
    withoutSource(workspace.exports),
    "publishConfig.exports is the workspace's exports less the source condition",
  );
  const targets = exportTargets(manifest.exports);
  assert.ok(targets.length > 0, "the packed package.json has exports");
  for (const target of targets) {
    assert.ok(!target.conditions.includes("source"), `exports keep a "source" condition: ${target.path}`);
    assert.ok(files.has(target.path.replace(/^\.\//, "")), `exports name ${target.path}, not in the tarball`);
  }
  for (const field of ["main", "module", "types"] as const) {
    const path = manifest[field];
    assert.equal(typeof path, "string", `"${field}" is set (node10 resolution)`);
    assert.ok(files.has(String(path).replace(/^\.\//, "")), `"${field}" names ${path}, not in the tarball`);
  }
  assert.deepEqual(
    [...files].filter((file) => file.startsWith("src/")),
    [],
    "no TypeScript sources are shipped",
  );
  const ranges = Object.values({
    ...(manifest.dependencies as Record<string, string>),
    ...(manifest.peerDependencies as Record<string, string> | undefined),
  });
  assert.ok(!ranges.some((range) => range.startsWith("workspace:")), "no workspace: range is published");
  if (name === "core") {
    const migrations = [...files].filter((file) => /^migrations\/\d{4}_.+\.sql$/.test(file));
    const expected = readdirSync(join(ROOT, "packages", "core", "migrations")).filter((f) =>
      f.endsWith(".sql"),
    );
    assert.equal(migrations.length, expected.length, "every migration is shipped");
    // The generated Prisma client is bundled into dist (it is not committed, nor generated on install).
    for (const file of ["dist/index.mjs", "dist/index.cjs"]) {
      const code = await mustExec("tar", ["-xzOf", tarball, `package/${file}`], ROOT);
      assert.match(code, /getPrismaClientClass/, `${file} contains the generated Prisma client`);
      assert.doesNotMatch(
        code,
        /(from |require\()"[^"]*generated\//,
        `${file} loads no generated file by path`,
      );
    }
  }
  if (name === "cli") {
    assert.ok(files.has("bin/flux.mjs") && files.has("dist/main.mjs"), "the flux binary and its entry");
  }
}

async function checkServer(context: CheckContext, app: ServerApp, entry: string): Promise<void> {
  const dir = await context.app(app);
  if (app !== "express-esm-js") {
    const build = await compile(dir, "typescript", "tsconfig.json");
    assert.ok(build.ok, `tsc failed:\n${build.output}`);
  }
  if (app === "nest-cjs-ts5") {
    const controller = readFileSync(join(dir, "dist", "events.controller.js"), "utf8");
    assert.match(controller, /require\("@flux-keys\/nestjs"\)/, "compiled to CommonJS require()");
    assert.match(controller, /design:paramtypes/, "with decorator metadata");
  }
  const served = await serveRequests(dir, entry);
  assert.equal(served.withKey.status, 200, `with the key: ${JSON.stringify(served.withKey.body)}`);
  assert.deepEqual(served.withKey.body, { org: "acme" });
  assert.equal(served.withoutKey.status, 401);
  assert.match(served.withoutKey.contentType ?? "", /^application\/problem\+json/);
  assert.equal((served.withoutKey.body as { status?: number }).status, 401);
  assert.ok(
    served.exit.code === 0 || served.exit.signal === "SIGTERM",
    `stopped cleanly on SIGTERM: ${JSON.stringify(served.exit)}`,
  );
}

const LINT_TIMEOUT = 60_000;
const APP_TIMEOUT = 180_000;

/** Every check, in the order the script runs them. */
export const CHECKS: PackageCheck[] = [
  ...PACKAGES.flatMap((name): PackageCheck[] => [
    {
      name: `${name}: the packed exports name only shipped files, no "source" condition`,
      timeoutMs: LINT_TIMEOUT,
      run: (context) => checkManifest(context, name),
    },
    {
      name: `${name}: publint --strict`,
      timeoutMs: LINT_TIMEOUT,
      run: async (context) => {
        const result = await publint(context.tarball(name));
        assert.ok(result.ok && !/Warnings:|Errors:/.test(result.output), result.output);
      },
    },
    {
      name: `${name}: are the types wrong (node10, node16 CJS/ESM, bundler)`,
      timeoutMs: LINT_TIMEOUT,
      run: async (context) => {
        const result = await attw(context.tarball(name));
        assert.ok(result.ok, result.output);
      },
    },
  ]),
  ...Object.entries(TYPESCRIPTS).flatMap(([version, typescript]) =>
    RESOLUTIONS.map(
      (resolution): PackageCheck => ({
        name: `TypeScript ${version}, moduleResolution ${resolution}: every entry point type-checks`,
        timeoutMs: APP_TIMEOUT,
        run: async (context) => {
          const dir = await context.app("types-matrix");
          const flags = resolution === "node10" ? typescript.node10Flags : [];
          const result = await compile(dir, typescript.module, `tsconfig.${resolution}.json`, flags);
          assert.ok(result.ok, result.output);
        },
      }),
    ),
  ),
  {
    name: "JavaScript: every entry point loads with import and with require, with the same exports",
    timeoutMs: APP_TIMEOUT,
    run: async (context) => {
      const result = await runNode(await context.app("types-matrix"), ["load.mjs"]);
      assert.ok(result.ok, result.output);
    },
  },
  {
    name: "Express 5, ESM JavaScript: 200 with a key, 401 problem+json without",
    timeoutMs: APP_TIMEOUT,
    run: (context) => checkServer(context, "express-esm-js", "server.js"),
  },
  {
    name: "Fastify 5, TypeScript 6 nodenext: compiles, 200 with a key, 401 without",
    timeoutMs: APP_TIMEOUT,
    run: (context) => checkServer(context, "fastify-ts-nodenext", "dist/server.js"),
  },
  {
    name: "NestJS 12, CommonJS on TypeScript 5.9 with decorator metadata: compiles, 200 with a key, 401 without",
    timeoutMs: APP_TIMEOUT,
    run: (context) => checkServer(context, "nest-cjs-ts5", "dist/main.js"),
  },
];
