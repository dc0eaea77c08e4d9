/**
 * A throwaway PgBouncer (Debian's `pgbouncer`) in transaction pooling on a loopback port, in front
 * of the local PostgreSQL, for one database. Outside CI a missing binary skips the suites that need
 * it; under CI (CI=true) it fails them (.ci/run installs it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DATABASE_URL } from "./services.js";

export const PGBOUNCER_BIN = "/usr/sbin/pgbouncer";
const IN_CI = Boolean(process.env.CI);

export const hasPgBouncer = (() => {
  if (existsSync(PGBOUNCER_BIN)) return true;
  if (IN_CI) throw new Error(`PgBouncer is required under CI but ${PGBOUNCER_BIN} is missing`);
  return false;
})();

export interface RunningBouncer {
  /** Through the pooler (transaction pooling), to `database`. */
  url: string;
  /** The pooler's admin console (`SHOW POOLS`, `SHOW STATS`…). */
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts PgBouncer with `pool_mode = transaction` and a small server pool (`poolSize`, default 2),
 * so that clients really share server connections and anything that relies on a session breaks.
 */
export async function startPgBouncer(options: {
  database: string;
  poolSize?: number;
}): Promise<RunningBouncer> {
  const upstream = new URL(DATABASE_URL);
  const dir = await mkdtemp(join(tmpdir(), "flux-pgbouncer-"));
  const port = await freePort();
  const user = decodeURIComponent(upstream.username || "postgres");
  const config = `[databases]
${options.database} = host=${upstream.hostname} port=${upstream.port || 5432} dbname=${options.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, "users.txt")}
admin_users = ${user}
pool_mode = transaction
default_pool_size = ${options.poolSize ?? 2}
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = ${join(dir, "pgbouncer.log")}
pidfile = ${join(dir, "pgbouncer.pid")}
`;
  await writeFile(join(dir, "pgbouncer.ini"), config);
  await writeFile(join(dir, "users.txt"), `"${user}" ""\n`);
  // PgBouncer refuses to run as root: as root, it runs as the postgres user (which must read the dir).
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = await postgresIds();
    for (const file of ["", "pgbouncer.ini", "users.txt"]) await chown(join(dir, file), uid, gid);
  }
  const child: ChildProcess = spawn(
    PGBOUNCER_BIN,
    [...(asRoot ? ["-u", "postgres"] : []), join(dir, "pgbouncer.ini")],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      const log = await readFile(join(dir, "pgbouncer.log"), "utf8").catch(() => "");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`PgBouncer did not start: ${stderr}${log}`.slice(0, 2_000));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const base = `postgresql://${encodeURIComponent(user)}@127.0.0.1:${port}`;
  return {
    url: `${base}/${options.database}`,
    adminUrl: `${base}/pgbouncer`,
    port,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        // SIGTERM: immediate shutdown (SIGINT would wait for clients to leave).
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** uid and gid of the postgres user (from /etc/passwd: no dependency for one line). */
async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile("/etc/passwd", "utf8");
  const line = passwd.split("\n").find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = (line ?? "").split(":");
  if (uid === undefined || gid === undefined) throw new Error("no postgres user to run PgBouncer as");
  return { uid: Number(uid), gid: Number(gid) };
}
