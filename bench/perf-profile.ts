/**
 * Where a server's CPU goes, from Linux `perf` (issue 16): `http-parts --profile` records each
 * server while it is loaded and attributes every sample, kernel and V8 internals included, to
 * whose work it is. Not a benchmark itself (`bench/run.ts` only runs `*.bench.ts`).
 *
 * A sample belongs to the innermost JavaScript frame of its stack (the servers run with
 * `--perf-basic-prof`, so perf names JIT-compiled functions), and that frame to a category:
 * Flux Keys' core or adapter (by file), the framework, Node's HTTP and streams, the benchmark's
 * own route. Samples with no JavaScript frame are V8's garbage collector, the event loop's
 * wait, or other native work. Two slices are reported beside the categories, over all samples:
 * - `kernel: waking the load generator`: the socket write's wake-up of the reader
 *   (`sock_def_readable`), which a server pays when the load generator waits for it;
 * - `V8: new object shapes`: maps created because an object gained a property
 *   (`TransitionToDataProperty`), which Express pays on every request (its requests and
 *   responses change prototype, and V8 does not share shapes after `Object.setPrototypeOf`).
 */
import { spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";

export const WAKE_UP = "kernel: waking the load generator";
export const NEW_SHAPES = "V8: new object shapes";

/** Whether `perf record` can sample a process here (installed, and allowed). */
export function perfAvailable(): boolean {
  const probe = spawnSync("perf", ["record", "-q", "-o", "/dev/null", "--", "true"], { stdio: "ignore" });
  return probe.status === 0;
}

/** Samples `pid` (call graphs, 1,999 Hz) until the returned function is called; resolves when written. */
export function record(pid: number, file: string): () => Promise<void> {
  const child = spawn("perf", ["record", "-q", "-g", "-F", "1999", "-p", String(pid), "-o", file], {
    stdio: "ignore",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return async () => {
    child.kill("SIGINT");
    await exited;
  };
}

/** The category of a JavaScript frame's name (`JS:*name file:line:column`). */
function categoryOf(frame: string): string {
  const packages = frame.indexOf("/packages/");
  if (packages !== -1) {
    const path = frame.slice(packages + "/packages/".length).split(":")[0] as string;
    const parts = path.split("/");
    return `flux-keys: ${parts[0]} ${parts[parts.length - 1]}`;
  }
  const modules = frame.lastIndexOf("node_modules/");
  if (modules !== -1) {
    const parts = frame.slice(modules + "node_modules/".length).split("/");
    const name = parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
    return `package: ${name}`;
  }
  const node = frame.indexOf(" node:");
  if (node !== -1) return `node: ${frame.slice(node + 6).split(":")[0]}`;
  if (frame.includes("/bench/")) return "benchmark route";
  return "other JavaScript";
}

/**
 * Nanoseconds of CPU by category in a perf.data file (`perf script`'s periods are ns of
 * cpu-clock). Deletes the file and the JIT map perf read.
 */
export function attribute(file: string): Map<string, number> {
  const script = spawnSync("perf", ["script", "-i", file, "-F", "period,ip,sym"], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  rmSync(file, { force: true });
  const totals = new Map<string, number>();
  const add = (category: string, ns: number) => totals.set(category, (totals.get(category) ?? 0) + ns);
  for (const block of script.stdout.split("\n\n")) {
    const lines = block.split("\n").filter((line) => line.trim() !== "");
    const period = Number(lines[0]?.trim().split(/\s+/)[0]);
    if (!Number.isFinite(period) || period <= 0) continue;
    // Each further line is one frame, innermost first: "<ip> <symbol>".
    const frames = lines.slice(1).map((line) => line.trim().replace(/^[0-9a-f]+\s+/, ""));
    const js = frames.find((frame) => frame.startsWith("JS:") || frame.startsWith("LazyCompile:"));
    if (js !== undefined) add(categoryOf(js), period);
    else if (frames.some((frame) => frame.includes("Scaveng") || frame.includes("v8::internal::Heap::")))
      add("V8: garbage collector", period);
    else if (frames.some((frame) => frame.includes("epoll_wait") || frame.includes("uv__io_poll")))
      add("event loop (no JavaScript)", period);
    else add("other native", period);
    if (frames.some((frame) => frame.includes("sock_def_readable"))) add(WAKE_UP, period);
    if (frames.some((frame) => frame.includes("TransitionToDataProperty"))) add(NEW_SHAPES, period);
  }
  return totals;
}

/** Removes the JIT map `--perf-basic-prof` wrote for a process that has exited. */
export function removePerfMap(pid: number): void {
  rmSync(`/tmp/perf-${pid}.map`, { force: true });
}
