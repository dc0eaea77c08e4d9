/**
 * Issue 19 benchmark: what a Stripe webhook costs, and the meter sender's throughput.
 * - webhook: sequential signed `customer.subscription.updated` deliveries through the handler (a
 *   Web Request each; signature check, event row, org lock, plan change, audit entry,
 *   invalidation), each one changing the plan; then the same events replayed (duplicates); and
 *   the signature check alone;
 * - meters: usage of ORGS orgs × MINUTES minutes (one meter event per org minute) sent to a local
 *   HTTP server standing in for Stripe, through the official client, at several concurrencies.
 *
 *   pnpm bench billing        (or: npx tsx --conditions=source bench/billing.bench.ts)
 *
 * BENCH_DATABASE_URL points at another PostgreSQL (default: the local one; PGlite is measured too).
 */
import { performance } from "node:perf_hooks";
import { createFlux, type Flux, type FluxOptions } from "@flux-keys/core";
import { createStripeMeterSync, createStripeWebhookHandler } from "@flux-keys/stripe";
import { fakeStripeClient, signEvent, startFakeStripe, subscriptionEvent } from "@flux-keys/stripe/testing";
import pg from "pg";

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const SECRET = "whsec_bench_0123456789abcdef";
const WEBHOOKS = Number(process.env.BENCH_WEBHOOKS ?? 400);
const ORGS = Number(process.env.BENCH_METER_ORGS ?? 200);
const MINUTES = Number(process.env.BENCH_METER_MINUTES ?? 30);

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};
const ms = (value: number) => `${value.toFixed(2)} ms`;

async function withStore<T>(name: string, fn: (options: FluxOptions) => Promise<T>): Promise<T | null> {
  if (name === "pglite") return fn({ database: { pglite: true }, redis: null });
  const schema = `bench_billing_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  try {
    await admin.connect();
  } catch {
    console.log("(PostgreSQL not reachable: skipped)");
    return null;
  }
  await admin.query(`CREATE SCHEMA "${schema}"`);
  try {
    return await fn({ database: { url: DATABASE_URL, schema, poolSize: 4 }, redis: null });
  } finally {
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  }
}

async function webhookCost(store: string): Promise<void> {
  await withStore(store, async (options) => {
    const flux = await createFlux(options);
    const server = await startFakeStripe();
    const stripe = fakeStripeClient(server);
    try {
      await flux.plans.upsert({ id: "free", name: "Free" });
      await flux.plans.upsert({ id: "pro", name: "Pro", entitlements: ["sso"] });
      await flux.plans.upsert({ id: "team", name: "Team", entitlements: ["sso", "audit"] });
      const orgs = 20;
      for (let i = 0; i < orgs; i++) {
        await flux.orgs.create({
          id: `org_${i}`,
          name: `Org ${i}`,
          planId: "free",
          stripeCustomerId: `cus_${i}`,
        });
      }
      const handler = createStripeWebhookHandler(flux, {
        stripe,
        webhookSecret: SECRET,
        plans: { pro_monthly: "pro", team_monthly: "team" },
        fallbackPlan: "free",
      });
      const t0 = Math.floor(Date.now() / 1000);
      const deliveries = Array.from({ length: WEBHOOKS }, (_, i) =>
        signEvent(
          stripe,
          SECRET,
          subscriptionEvent({
            id: `evt_bench_${i}`,
            type: "customer.subscription.updated",
            created: t0 + Math.floor(i / orgs),
            customer: `cus_${i % orgs}`,
            status: "active",
            lookupKey: Math.floor(i / orgs) % 2 === 0 ? "pro_monthly" : "team_monthly",
          }),
        ),
      );
      const post = async (delivery: { body: string; signature: string }) => {
        const start = performance.now();
        const response = await handler(
          new Request("http://localhost/stripe/webhooks", {
            method: "POST",
            headers: { "Content-Type": "application/json", "Stripe-Signature": delivery.signature },
            body: delivery.body,
          }),
        );
        const outcome = ((await response.json()) as { outcome: string }).outcome;
        return { elapsed: performance.now() - start, outcome };
      };
      // Warm up on events of their own (JIT, connections, prepared plans).
      for (let i = 0; i < 20; i++) {
        await post(
          signEvent(
            stripe,
            SECRET,
            subscriptionEvent({
              id: `evt_warm_${i}`,
              type: "customer.subscription.updated",
              created: t0 - 100,
              customer: `cus_${i % orgs}`,
              status: "active",
              lookupKey: "pro_monthly",
            }),
          ),
        );
      }
      const applied: number[] = [];
      const cpuStart = process.cpuUsage();
      const wallStart = performance.now();
      for (const delivery of deliveries) {
        const { elapsed, outcome } = await post(delivery);
        if (outcome !== "applied") throw new Error(`unexpected outcome ${outcome}`);
        applied.push(elapsed);
      }
      const wall = performance.now() - wallStart;
      const cpu = process.cpuUsage(cpuStart);
      const cpuPerWebhook = (cpu.user + cpu.system) / 1000 / WEBHOOKS;
      const replayed: number[] = [];
      for (const delivery of deliveries.slice(0, 200)) {
        const { elapsed, outcome } = await post(delivery);
        if (outcome !== "duplicate") throw new Error(`unexpected outcome ${outcome}`);
        replayed.push(elapsed);
      }
      const signatureOnly: number[] = [];
      for (const delivery of deliveries.slice(0, 200)) {
        const start = performance.now();
        await stripe.webhooks.constructEventAsync(delivery.body, delivery.signature, SECRET);
        signatureOnly.push(performance.now() - start);
      }
      console.log(
        `${store}: webhook applied (plan change + audit + invalidation), ${WEBHOOKS} sequential: p50 ${ms(quantile(applied, 0.5))}, p90 ${ms(quantile(applied, 0.9))}, p99 ${ms(quantile(applied, 0.99))}; ${(WEBHOOKS / (wall / 1000)).toFixed(0)} webhooks/s; this process's CPU ${ms(cpuPerWebhook)} per webhook`,
      );
      console.log(
        `${store}: webhook replayed (duplicate), 200: p50 ${ms(quantile(replayed, 0.5))}, p99 ${ms(quantile(replayed, 0.99))}; signature check alone p50 ${ms(quantile(signatureOnly, 0.5))}`,
      );
    } finally {
      await server.close();
      await flux.close();
    }
  });
}

async function meterThroughput(store: string): Promise<void> {
  await withStore(store, async (options) => {
    const flux: Flux = await createFlux({
      ...options,
      usage: { flushInterval: "1h", maxBufferedBuckets: 1_000_000, flushAt: 1_000_000 },
    });
    const server = await startFakeStripe();
    try {
      const base = Math.floor(Date.now() / 60_000) * 60_000 - (MINUTES + 10) * 60_000;
      for (let o = 0; o < ORGS; o++) {
        await flux.orgs.create({ id: `org_${o}`, name: `Org ${o}`, stripeCustomerId: `cus_${o}` });
      }
      let expected = 0;
      for (let o = 0; o < ORGS; o++) {
        for (let m = 0; m < MINUTES; m++) {
          const calls = 1 + ((o + m) % 7);
          for (let c = 0; c < calls; c++) {
            flux.usage.record({
              keyId: `key_${o}`,
              orgId: `org_${o}`,
              method: "GET",
              endpoint: "/v1/events",
              status: 200,
              latencyMs: 1,
              at: base + m * 60_000 + 1_000,
            });
          }
          expected += calls;
        }
      }
      await flux.usage.flush();
      // The same usage under a meter of its own per concurrency: each sends every bucket once.
      for (const concurrency of [1, 8, 32]) {
        const eventName = `api_calls_c${concurrency}`;
        const sync = createStripeMeterSync(flux, {
          stripe: fakeStripeClient(server),
          meters: [{ eventName }],
          concurrency,
          batchSize: ORGS * MINUTES,
        });
        const outbox = flux.billing.meter(eventName);
        const planStart = performance.now();
        await outbox.plan();
        const planMs = performance.now() - planStart;
        const cpuBefore = process.cpuUsage();
        const start = performance.now();
        const report = await sync.runOnce();
        const elapsed = performance.now() - start;
        const cpu = process.cpuUsage(cpuBefore);
        const cpuPerEvent = (cpu.user + cpu.system) / report.sent;
        const total = server.total(eventName);
        console.log(
          `${store}: meter sender, concurrency ${concurrency}: ${report.sent} events in ${(elapsed / 1000).toFixed(2)} s = ${(report.sent / (elapsed / 1000)).toFixed(0)} events/s, ${cpuPerEvent.toFixed(0)} µs CPU per event (sender and fake server together) (planning ${ORGS * MINUTES} buckets: ${ms(planMs)}); meter total ${total} ${total === expected ? "=" : "≠"} recorded ${expected}`,
        );
        await sync.close();
      }
    } finally {
      await server.close();
      await flux.close();
    }
  });
}

for (const store of ["pglite", "postgres"]) {
  await webhookCost(store);
  await meterThroughput(store);
}
