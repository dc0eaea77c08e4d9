/**
 * What the three example apps share: the demo plan, org and key, the in-memory events, and a
 * clean shutdown. The apps differ only in how their framework wires Flux Keys in.
 */
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";

export const DEMO_PLAN = {
  id: "demo-pro",
  name: "Demo Pro",
  scopes: ["read:events", "write:events"],
  rateLimits: [
    { name: "burst", limit: 20, window: "1s" as const },
    { name: "sustained", limit: 1000, window: "1h" as const },
  ],
  entitlements: ["bulk_export"],
};
export const DEMO_ORG = { id: "demo-org", name: "Demo Inc." };

/**
 * Opens Flux on `DATABASE_URL` / `REDIS_URL` when set, else on the embedded defaults.
 * `REDIS_CLUSTER_NODES` (`host:port,host:port,…`, some nodes of a Redis Cluster) takes the place
 * of `REDIS_URL`: limits, quotas and invalidation then run on the cluster.
 */
export function openFlux(options: FluxOptions = {}): Promise<Flux> {
  const nodes = process.env.REDIS_CLUSTER_NODES;
  if (nodes === undefined || nodes === "" || options.redis !== undefined) return createFlux(options);
  return createFlux({ ...options, redis: { cluster: clusterNodes(nodes) } });
}

/** `host:port,host:port` as ioredis Cluster startup nodes; anything else is refused. */
export function clusterNodes(list: string): Array<{ host: string; port: number }> {
  return list.split(",").map((entry) => {
    const at = entry.trim().lastIndexOf(":");
    const host = entry.trim().slice(0, at);
    const port = Number(entry.trim().slice(at + 1));
    if (at <= 0 || !(Number.isInteger(port) && port > 0 && port < 65536)) {
      throw new Error(`REDIS_CLUSTER_NODES: '${entry}' is not host:port`);
    }
    return { host, port };
  });
}

/**
 * Seeds the demo plan and org on first start and issues a demo key. A key's secret is shown
 * only when it is issued, so every start issues a fresh one.
 */
export async function seedDemo(flux: Flux): Promise<{ secret: string; keyId: string }> {
  await flux.plans.upsert(DEMO_PLAN);
  try {
    await flux.orgs.get(DEMO_ORG.id);
  } catch {
    await flux.orgs.create({ ...DEMO_ORG, planId: DEMO_PLAN.id });
  }
  const { key, secret } = await flux.keys
    .create()
    .forOrg(DEMO_ORG.id)
    .named("Demo key")
    .withScopes(["read:events", "write:events"])
    .expiresInDays(30)
    .createdBy({ type: "admin", id: "demo-seed" })
    .issue();
  return { secret, keyId: key.id };
}

export interface EventRecord {
  id: string;
  orgId: string;
  type: string;
  at: string;
}

/** Events in memory, per org (each org sees only its own). */
export class EventStore {
  private readonly events: EventRecord[] = [];
  private next = 1;

  list(orgId: string): EventRecord[] {
    return this.events.filter((event) => event.orgId === orgId);
  }

  get(orgId: string, id: string): EventRecord | undefined {
    return this.events.find((event) => event.orgId === orgId && event.id === id);
  }

  add(orgId: string, body: unknown): EventRecord | null {
    const type = (body as { type?: unknown } | null)?.type;
    if (typeof type !== "string" || type.length === 0 || type.length > 100) return null;
    const event = { id: `evt_${this.next++}`, orgId, type, at: new Date().toISOString() };
    this.events.push(event);
    return event;
  }
}

/** A one-time customer portal link for the demo org (valid 15 minutes, single use). */
export async function demoPortalLink(flux: Flux, baseUrl: string): Promise<string> {
  const { url } = await flux.portal.createSession({
    orgId: DEMO_ORG.id,
    userId: "demo-admin",
    role: "admin",
    ttl: "15m",
  });
  return `${baseUrl}${url}`;
}

/** Prints the ready-to-paste lines for a running example. */
export function printWelcome(name: string, url: string, secret: string, portalLink?: string): void {
  console.log(`\n${name} listening on ${url}\n`);
  console.log(`Demo key (shown once): ${secret}\n`);
  if (portalLink) console.log(`Customer portal (single-use link, 15 min): ${portalLink}\n`);
  console.log("Try:");
  console.log(`  curl -s ${url}/v1/events -H 'Authorization: Bearer ${secret}'`);
  console.log(
    `  curl -s -X POST ${url}/v1/events -H 'Authorization: Bearer ${secret}' -H 'Content-Type: application/json' -d '{"type":"deploy"}'`,
  );
  console.log(`  curl -s -X POST ${url}/v1/exports -H 'X-API-Key: ${secret}'`);
  console.log(`  curl -si ${url}/v1/events            # 401 problem+json, WWW-Authenticate`);
  console.log(
    `  curl -si ${url}/v1/events -H 'Authorization: Bearer flux_live_nope'   # 401 key_malformed\n`,
  );
}

/** Closes the server, then Flux (flushing usage), on SIGTERM or SIGINT. */
export function closeOnSignals(closeServer: () => Promise<void>, flux: Flux): void {
  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    console.log(`\n${signal}: finishing in-flight requests, flushing usage…`);
    await closeServer();
    await flux.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void close("SIGTERM"));
  process.once("SIGINT", () => void close("SIGINT"));
  // A package manager that runs this (`pnpm start`) may exit on SIGTERM without passing it on:
  // when the process that started us is gone, stop as if we had been told to.
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid !== parent) void close("parent exited");
  }, 250);
  watch.unref();
}
