/**
 * `flux_key_clients` keeps at most `observations.maxClientsPerKey` clients per key (the most
 * recent), on every store; older clients are folded into one summary row so totals stay exact.
 */
import { createFlux, type Flux, FluxConfigError } from "@flux-keys/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";

describe.each(STORES)("observed clients on $name", (store) => {
  let flux: Flux;
  let teardown = async () => {};
  let now = Date.UTC(2026, 4, 10, 12);
  const tick = () => now++;

  beforeAll(async () => {
    if (!store.available) return;
    const setup = await store.setup();
    teardown = setup.teardown;
    flux = await createFlux(setup.options({ clock: tick, usage: { flushInterval: "1h" } }));
    await flux.orgs.create({ id: "acme", name: "Acme" });
  });
  afterAll(async () => {
    await flux?.close();
    await teardown();
  });

  async function rowsOf(keyId: string): Promise<number> {
    const [row] = await flux.internals.database.driver.withSession((session) =>
      session.query<{ n: number }>('SELECT count(*)::int AS n FROM "flux_key_clients" WHERE "key_id" = $1', [
        keyId,
      ]),
    );
    return row!.n;
  }

  it.skipIf(!store.available)(
    "keeps the 100 most recent clients of a key by default, with exact call totals",
    async () => {
      const { key, secret } = await flux.keys.create().forOrg("acme").issue();
      await flux.keys.rotate(key.id, { gracePeriod: "1h" });
      const context = await flux.keys.verify(secret);
      // 1,500 distinct user agents in three flushes, the way a flood of clients would come.
      for (let batch = 0; batch < 3; batch++) {
        for (let i = 0; i < 500; i++) {
          flux.keys.observe(context, { clientAddress: "203.0.113.7", userAgent: `agent/${batch * 500 + i}` });
        }
        // graceUsage flushes what is buffered first.
        await flux.keys.graceUsage(key.id);
      }
      const grace = await flux.keys.graceUsage(key.id, { limit: 200 });
      expect(grace.calls).toBe(1_500);
      expect(grace.clients).toHaveLength(100);
      // The most recent ones, newest first.
      expect(grace.clients[0]!.userAgent).toBe("agent/1499");
      expect(grace.clients.map((c) => c.userAgent)).toContain("agent/1400");
      expect(grace.clients.map((c) => c.userAgent)).not.toContain("agent/1399");
      // 100 clients and the one row that sums the older ones.
      expect(await rowsOf(key.id)).toBe(101);
    },
  );

  it.skipIf(!store.available)("refuses a maxClientsPerKey that is not a positive integer", async () => {
    for (const maxClientsPerKey of [0, 1.5, -3]) {
      const attempt = createFlux({ database: { pglite: true }, observations: { maxClientsPerKey } });
      await expect(attempt).rejects.toBeInstanceOf(FluxConfigError);
      await expect(attempt).rejects.toMatchObject({ code: "invalid_option" });
    }
  });
});
