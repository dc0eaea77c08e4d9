/**
 * Throwaway services for fault tests: a PostgreSQL cluster (initdb + pg_ctl in a temp folder, run
 * as the postgres user when the tests run as root) and a redis-server, each on its own free
 * loopback port, plus a spawner for the example apps. Everything started here is registered and
 * killed when the test process exits, even if a suite forgets or crashes.
 *
 * Outside CI a missing binary makes `pgAvailable` / `redisAvailable` false (suites skip); under
 * CI=true it throws, so the run fails.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Redis } from "ioredis";

const run = promisify(execFile);

export const PG_BIN = process.env.FLUX_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";
export const REDIS_SERVER = process.env.FLUX_TEST_REDIS_SERVER ?? "/usr/bin/redis-server";

function binaries(name: string, paths: string[]): boolean {
  const ok = paths.every((path) => existsSync(path));
  if (!ok && process.env.CI) throw new Error(`${name} binaries are required under CI (${paths.join(", ")})`);
  return ok;
}

export const pgAvailable = binaries("PostgreSQL", [join(PG_BIN, "initdb"), join(PG_BIN, "pg_ctl")]);
export const redisAvailable = binaries("Redis", [REDIS_SERVER]);

/** Cleanups run synchronously when the test process exits, whatever the reason. */
const onExit = new Set<() => void>();
let exitHooked = false;
function registerCleanup(cleanup: () => void): () => void {
  if (!exitHooked) {
    exitHooked = true;
    process.once("exit", () => {
      for (const fn of onExit) {
        try {
          fn();
        } catch {}
      }
    });
  }
  onExit.add(cleanup);
  return () => onExit.delete(cleanup);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

const asRoot = process.getuid?.() === 0;

/** initdb refuses to run as root: as root, run the server tools as the postgres user. */
function serverCommand(command: string, args: string[]): [string, string[]] {
  return asRoot ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

/**
 * A PostgreSQL cluster of its own. `start()` / `stop()` are asynchronous so that an app served
 * from the test process keeps answering while the server goes down or comes up.
 */
export class ThrowawayPostgres {
  readonly dir = mkdtempSync(join(tmpdir(), "flux-pg-"));
  private readonly data = join(this.dir, "data");
  running = false;
  private readonly unregister: () => void;

  private constructor(readonly port: number) {
    if (asRoot) {
      const uid = Number(execFileSync("id", ["-u", "postgres"]).toString());
      const gid = Number(execFileSync("id", ["-g", "postgres"]).toString());
      chownSync(this.dir, uid, gid);
    }
    this.unregister = registerCleanup(() => this.destroySync());
  }

  /** initdb on a free port (not started). */
  static async create(): Promise<ThrowawayPostgres> {
    const server = new ThrowawayPostgres(await freePort());
    const [cmd, args] = serverCommand(join(PG_BIN, "initdb"), [
      "-D",
      server.data,
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
      "--no-sync",
    ]);
    await run(cmd, args);
    return server;
  }

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir} -c fsync=off`;
    const [cmd, args] = serverCommand(join(PG_BIN, "pg_ctl"), [
      "-D",
      this.data,
      "-o",
      options,
      "-l",
      join(this.dir, "log"),
      "-w",
      "start",
    ]);
    this.running = true;
    await run(cmd, args);
  }

  /** `fast`: clients are disconnected, as when an operator or the OOM killer restarts it. */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    const [cmd, args] = serverCommand(join(PG_BIN, "pg_ctl"), ["-D", this.data, "-m", mode, "-w", "stop"]);
    await run(cmd, args);
    this.running = false;
  }

  async destroy(): Promise<void> {
    if (this.running) await this.stop("immediate").catch(() => {});
    this.unregister();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private destroySync(): void {
    if (this.running) {
      const [cmd, args] = serverCommand(join(PG_BIN, "pg_ctl"), ["-D", this.data, "-m", "immediate", "stop"]);
      try {
        execFileSync(cmd, args, { stdio: "ignore" });
      } catch {}
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A redis-server of its own, without persistence (a restart comes back empty). */
export class ThrowawayRedis {
  private child: ChildProcess | null = null;
  private readonly unregister = registerCleanup(() => this.child?.kill("SIGKILL"));

  private constructor(readonly port: number) {}

  static async start(): Promise<ThrowawayRedis> {
    const redis = new ThrowawayRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    this.child = spawn(
      REDIS_SERVER,
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    await redisAnswers(this.port);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async destroy(): Promise<void> {
    await this.kill();
    this.unregister();
  }

  /** A plain client for inspecting the server's contents. */
  inspector(): Redis {
    const client = new Redis({ port: this.port, host: "127.0.0.1", maxRetriesPerRequest: 1 });
    client.on("error", () => {});
    return client;
  }
}

/** Resolves once a redis-server just spawned on `port` answers PING (about 5 s at most). */
export async function redisAnswers(port: number): Promise<void> {
  const probe = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on("error", () => {});
  try {
    for (let i = 0; i < 200; i++) {
      try {
        await probe.connect();
        await probe.ping();
        return;
      } catch {
        probe.disconnect();
        await sleep(25);
      }
    }
    throw new Error(`redis-server on ${port} did not start`);
  } finally {
    probe.disconnect();
  }
}

/** An example app as a user starts it: a real process with DATABASE_URL / REDIS_URL / PORT. */
export class ExampleProcess {
  readonly child: ChildProcess;
  output = "";
  private readonly unregister: () => void;

  constructor(entry: string, env: Record<string, string>, args: string[] = []) {
    this.child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", entry, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    this.unregister = registerCleanup(() => this.child.kill("SIGKILL"));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits for the printed demo key. */
  async demoKey(timeoutMs = 40_000): Promise<string> {
    const pattern = /Demo key \(shown once\): (flux_live_[0-9A-Za-z]{49})/;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = pattern.exec(this.output);
      if (match) return match[1] as string;
      if (this.exited) throw new Error(`example exited before printing its key:\n${this.output}`);
      await sleep(50);
    }
    throw new Error(`no demo key within ${timeoutMs} ms:\n${this.output}`);
  }

  /** Sends a signal; resolves with the exit code (null when killed by a signal) or rejects after timeoutMs. */
  async signal(signal: NodeJS.Signals, timeoutMs = 20_000): Promise<number | null> {
    const exited = this.exited
      ? Promise.resolve(this.child.exitCode)
      : new Promise<number | null>((resolve) => this.child.once("exit", (code) => resolve(code)));
    this.child.kill(signal);
    const timer = sleep(timeoutMs).then(() => {
      throw new Error(`example did not exit within ${timeoutMs} ms of ${signal}:\n${this.output}`);
    });
    return Promise.race([exited, timer]);
  }

  dispose(): void {
    if (!this.exited) this.child.kill("SIGKILL");
    this.unregister();
  }
}

export { until } from "./until.js";

export interface Answer {
  /** HTTP status, or 0 when no response arrived (network error or the hang bound). */
  status: number;
  /** ms from send to answer. */
  ms: number;
  sentAt: number;
  doneAt: number;
  code?: string | undefined;
  retryAfter?: string | null;
  error?: string;
}

/**
 * One HTTP request with a hang bound: a request that does not answer within `boundMs` is aborted
 * and reported as status 0 with error "hang". Never throws.
 */
export async function ask(url: string, init: RequestInit = {}, boundMs = 5_000): Promise<Answer> {
  const sentAt = Date.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(boundMs) });
    const text = await response.text();
    let code: string | undefined;
    if (response.headers.get("content-type")?.includes("problem+json")) {
      try {
        code = (JSON.parse(text) as { code?: string }).code;
      } catch {}
    }
    const doneAt = Date.now();
    return {
      status: response.status,
      ms: doneAt - sentAt,
      sentAt,
      doneAt,
      code,
      retryAfter: response.headers.get("retry-after"),
    };
  } catch (error) {
    const doneAt = Date.now();
    const name = (error as Error).name;
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return {
      status: 0,
      ms: doneAt - sentAt,
      sentAt,
      doneAt,
      error: name === "TimeoutError" ? "hang" : (cause ?? name),
    };
  }
}

/**
 * `workers` concurrent request loops until `stop()` (or `maxRequests` in all), each answer kept.
 * Bounded: never more than `maxRequests` requests.
 */
export function load(
  send: (i: number) => Promise<Answer>,
  options: { workers: number; maxRequests: number; pauseMs?: number },
): { answers: Answer[]; stop(): Promise<Answer[]>; done: Promise<Answer[]> } {
  const answers: Answer[] = [];
  let stopped = false;
  let issued = 0;
  const loops = Array.from({ length: options.workers }, async () => {
    while (!stopped && issued < options.maxRequests) {
      const answer = await send(issued++);
      answers.push(answer);
      if (options.pauseMs) await sleep(options.pauseMs);
    }
  });
  const done = Promise.all(loops).then(() => answers);
  return {
    answers,
    done,
    async stop() {
      stopped = true;
      return done;
    },
  };
}

/**
 * A loopback TCP proxy in front of a server, able to cut one connection at a chosen moment: once
 * armed, when a client sends bytes containing `marker`, the proxy lets the request through, waits
 * for the server's answer to end with PostgreSQL's ReadyForQuery (so the statement has committed),
 * swallows that answer and destroys both sides. The client sees a connection lost mid-statement
 * whose outcome was in fact a commit.
 */
/**
 * Connects `client` to the server on `targetPort` and relays both ways through the filters (a
 * chunk goes on when its filter says so); `close` destroys both sides. `sockets` tracks them.
 */
function relay(
  client: Socket,
  targetPort: number,
  sockets: Set<Socket>,
  filter: {
    fromClient(chunk: Buffer, close: () => void): boolean;
    fromServer(chunk: Buffer, close: () => void): boolean;
  },
): void {
  const upstream = connect(targetPort, "127.0.0.1");
  sockets.add(client);
  sockets.add(upstream);
  const close = () => {
    client.destroy();
    upstream.destroy();
    sockets.delete(client);
    sockets.delete(upstream);
  };
  client.on("data", (chunk: Buffer) => {
    if (filter.fromClient(chunk, close)) upstream.write(chunk);
  });
  upstream.on("data", (chunk: Buffer) => {
    if (filter.fromServer(chunk, close)) client.write(chunk);
  });
  client.on("error", close);
  upstream.on("error", close);
  client.on("close", close);
  upstream.on("close", close);
}

/** PostgreSQL's ReadyForQuery: 'Z', length 5. The statement's transaction is over. */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

export class CuttingProxy {
  private armed: string | null = null;
  cuts = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: NetServer,
    readonly port: number,
  ) {}

  /**
   * `isAnswer` says when the server's answer to the armed request is complete (default:
   * PostgreSQL's ReadyForQuery); for Redis, whose replies are one frame, any reply will do.
   */
  static async start(
    targetPort: number,
    isAnswer: (chunk: Buffer) => boolean = (chunk) => chunk.includes(READY_FOR_QUERY),
  ): Promise<CuttingProxy> {
    let proxy: CuttingProxy | undefined;
    const server = createServer((client) => {
      const self = proxy as CuttingProxy;
      let cutting = false;
      relay(client, targetPort, self.sockets, {
        fromClient(chunk) {
          if (self.armed !== null && chunk.includes(self.armed)) {
            self.armed = null;
            cutting = true;
          }
          return true;
        },
        fromServer(chunk, close) {
          if (!cutting) return true;
          // The statement (or command) has run; drop its answer.
          if (isAnswer(chunk)) {
            self.cuts++;
            close();
          }
          return false;
        },
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new CuttingProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  get redisUrl(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Cut the connection whose next request contains `marker`, after the server has answered it. */
  arm(marker: string): void {
    this.armed = marker;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * A loopback TCP proxy that can fail the way networks do: `blackHole()` keeps every connection
 * open but forwards nothing (a partition: the client learns only from its own timeouts), `cut()`
 * destroys every connection at once (a reset), `heal()` forwards again (new connections only
 * after a black hole: held connections stay silent, as a partitioned peer's would).
 */
export class FaultyProxy {
  private holding = false;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: NetServer,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FaultyProxy> {
    let proxy: FaultyProxy | undefined;
    const server = createServer((client) => {
      const self = proxy as FaultyProxy;
      if (self.holding) {
        // A new connection during a partition: accepted by the kernel, answered by nobody.
        self.sockets.add(client);
        client.on("error", () => {});
        client.on("close", () => self.sockets.delete(client));
        return;
      }
      // A connection that saw the black hole stays silent, as a partitioned peer's would.
      let silenced = false;
      const forward = () => {
        if (self.holding) silenced = true;
        return !silenced;
      };
      relay(client, targetPort, self.sockets, { fromClient: forward, fromServer: forward });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new FaultyProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  /** From now on nothing is forwarded, on open connections or new ones; nothing is closed. */
  blackHole(): void {
    this.holding = true;
  }

  /** Every open connection is destroyed. */
  cut(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** New connections are forwarded again; connections held by the black hole are dropped. */
  heal(): void {
    this.cut();
    this.holding = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
