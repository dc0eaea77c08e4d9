/**
 * A throwaway Redis Cluster of 3 masters and 3 replicas from Debian's redis-server, each node on
 * its own free loopback port (and its own cluster bus port), created with
 * `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`. Nodes can be killed
 * (SIGKILL) to force a failover. Every node is killed when the test process exits.
 *
 * Outside CI a missing redis-server or redis-cli makes `clusterAvailable` false (suites skip);
 * under CI=true it throws, so the run fails.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { freePort, REDIS_SERVER, redisAnswers } from "./faults-services.js";

const run = promisify(execFile);

export const REDIS_CLI = process.env.FLUX_TEST_REDIS_CLI ?? "/usr/bin/redis-cli";

export const clusterAvailable = (() => {
  const ok = existsSync(REDIS_SERVER) && existsSync(REDIS_CLI);
  if (!ok && process.env.CI) {
    throw new Error(`redis-server and redis-cli are required under CI (${REDIS_SERVER}, ${REDIS_CLI})`);
  }
  return ok;
})();

/** How long a master may be unreachable before its replica takes over (cluster-node-timeout). */
export const NODE_TIMEOUT_MS = 1_000;

interface Node {
  port: number;
  /** The cluster bus port (by default port + 10000, which may be past 65535 for a free port). */
  busPort: number;
  child: ChildProcess | null;
}

const running = new Set<ChildProcess>();
let exitHooked = false;
function track(child: ChildProcess): void {
  if (!exitHooked) {
    exitHooked = true;
    process.once("exit", () => {
      for (const process of running) process.kill("SIGKILL");
    });
  }
  running.add(child);
  child.once("exit", () => running.delete(child));
}

export class ThrowawayRedisCluster {
  readonly dir = mkdtempSync(join(tmpdir(), "flux-redis-cluster-"));

  private constructor(private readonly nodes: Node[]) {}

  /** Six nodes, three masters with a replica each; resolves once every slot is served. */
  static async start(): Promise<ThrowawayRedisCluster> {
    const nodes: Node[] = [];
    for (let i = 0; i < 6; i++)
      nodes.push({ port: await freePort(), busPort: await freePort(), child: null });
    const cluster = new ThrowawayRedisCluster(nodes);
    try {
      for (const node of nodes) cluster.spawn(node);
      for (const node of nodes) await redisAnswers(node.port);
      await run(
        REDIS_CLI,
        [
          "--cluster",
          "create",
          ...nodes.map((node) => `127.0.0.1:${node.port}`),
          "--cluster-replicas",
          "1",
          "--cluster-yes",
        ],
        { timeout: 60_000 },
      );
      await cluster.waitForState("ok", 30_000);
      return cluster;
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
  }

  /** Nodes to start an ioredis Cluster from (all six, as an app's config would list some). */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodes.map((node) => ({ host: "127.0.0.1", port: node.port }));
  }

  /** A plain client of one node (for CLUSTER and INFO commands). */
  client(port: number): Redis {
    const client = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 1, lazyConnect: false });
    client.on("error", () => {});
    return client;
  }

  /** Port of the live master serving the slot of `key`, as a live node sees it. */
  async masterOf(key: string): Promise<number> {
    const client = this.client(this.live()[0] as number);
    try {
      const slot = Number(await client.call("CLUSTER", "KEYSLOT", key));
      const slots = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (range === undefined) throw new Error(`no node serves slot ${slot}`);
      return range[2][1];
    } finally {
      client.disconnect();
    }
  }

  /** Ports of the replicas of the master on `port`. */
  async replicasOf(port: number): Promise<number[]> {
    const client = this.client(port);
    try {
      const nodes = String(await client.call("CLUSTER", "NODES"))
        .trim()
        .split("\n");
      const self = nodes.find((line) => line.includes("myself"));
      const id = self?.split(" ")[0];
      return nodes
        .filter((line) => line.split(" ")[3] === id)
        .map((line) => Number(/:(\d+)@/.exec(line.split(" ")[1] as string)?.[1]));
    } finally {
      client.disconnect();
    }
  }

  /**
   * The master serving the slot of `key` and a replica of it that is in sync, once there is one.
   * Right after `--cluster create`, or after a failover the cluster made by itself (a master
   * starved of CPU for longer than the node timeout on a loaded machine), the master may not
   * list a replica yet; this waits for the pair rather than reading one snapshot.
   */
  async failoverPair(key: string, timeoutMs = 20_000): Promise<{ master: number; replica: number }> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      try {
        const master = await this.masterOf(key);
        const linked = await this.replicasOf(master);
        const client = this.client(master);
        try {
          const role = (await client.call("ROLE")) as [string, number, Array<[string, string, string]>];
          const inSync = role[0] === "master" ? role[2].map(([, port]) => Number(port)) : [];
          const replica = linked.find((port) => inSync.includes(port));
          if (replica !== undefined) return { master, replica };
        } finally {
          client.disconnect();
        }
      } catch {
        // the topology is changing
      }
      if (Date.now() > deadline)
        throw new Error(`no master of ${key} with a replica in sync within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  /** SIGKILL one node, as a crash or the OOM killer would. */
  async kill(port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port);
    const child = node?.child;
    if (!node || !child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    node.child = null;
  }

  /** Resolves when `port` is a master again serving slots (its replica took over). */
  async waitForPromotion(port: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const client = this.client(port);
      try {
        const role = (await client.call("ROLE")) as [string];
        const info = String(await client.call("CLUSTER", "INFO"));
        if (role[0] === "master" && info.includes("cluster_state:ok")) return;
      } catch {
        // not yet
      } finally {
        client.disconnect();
      }
      await sleep(100);
    }
    throw new Error(`node ${port} was not promoted within ${timeoutMs} ms`);
  }

  async destroy(): Promise<void> {
    for (const node of this.nodes) await this.kill(node.port);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private live(): number[] {
    return this.nodes.filter((node) => node.child !== null).map((node) => node.port);
  }

  private spawn(node: Node): void {
    const child = spawn(
      REDIS_SERVER,
      [
        "--port",
        String(node.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        this.dir,
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        String(node.busPort),
        "--cluster-config-file",
        `nodes-${node.port}.conf`,
        "--cluster-node-timeout",
        String(NODE_TIMEOUT_MS),
        // A replica may take over however long ago it last heard its master.
        "--cluster-replica-validity-factor",
        "0",
      ],
      { stdio: "ignore" },
    );
    track(child);
    node.child = child;
  }

  private async waitForState(state: "ok", timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const port of this.live()) {
      while (true) {
        const client = this.client(port);
        try {
          const info = String(await client.call("CLUSTER", "INFO"));
          if (info.includes(`cluster_state:${state}`)) break;
        } catch {
          // starting
        } finally {
          client.disconnect();
        }
        if (Date.now() > deadline) throw new Error(`the cluster did not reach state ${state}`);
        await sleep(100);
      }
    }
  }
}
