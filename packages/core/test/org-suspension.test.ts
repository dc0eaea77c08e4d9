/**
 * Suspending an org refuses every key of the org (`org_suspended`, 403) at once, cached or not,
 * on this instance and on every other; resuming it restores them. Run on PGlite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasPostgres, STORES } from "../../../test/support/services.js";
import { createFlux, type Flux, type FluxError } from "../src/index.js";

async function denial(flux: Flux, secret: string): Promise<FluxError | null> {
  const result = await flux.keys.check(secret);
  return result.valid ? null : result.error;
}

describe.each(STORES)("org suspension on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options());
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      rateLimits: [{ name: "rpm", limit: 1000, window: "1m" }],
    });
  });
  afterAll(async () => {
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)(
    "refuses the org's cached keys at once and restores them on resume",
    async () => {
      await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
      const { secret } = await flux.keys.create().forOrg("acme").issue();
      expect((await flux.keys.verify(secret)).orgId).toBe("acme"); // cached now

      const suspended = await flux.orgs.suspend("acme", { reason: "fraud review" });
      expect(suspended.suspendedAt).toBeInstanceOf(Date);
      expect(suspended.suspendedReason).toBe("fraud review");
      expect(suspended.planId).toBe("pro");

      const error = await denial(flux, secret);
      expect(error?.code).toBe("org_suspended");
      expect(error?.status).toBe(403);
      expect(error?.toProblem().type).toBe("https://flux-keys.dev/problems/org_suspended");
      await expect(flux.keys.verify(secret)).rejects.toMatchObject({ code: "org_suspended" });

      const resumed = await flux.orgs.resume("acme");
      expect(resumed.suspendedAt).toBeNull();
      expect(resumed.suspendedReason).toBeNull();
      expect((await flux.keys.verify(secret)).orgId).toBe("acme");

      const actions = (await flux.audit.list({ orgId: "acme" })).items.map((entry) => entry.action);
      expect(actions).toEqual(expect.arrayContaining(["org.suspended", "org.resumed"]));
    },
  );

  it.skipIf(!store.available)(
    "a key of a suspended org issued before or after is refused; others are not",
    async () => {
      await flux.orgs.create({ id: "globex", name: "Globex", planId: "pro" });
      await flux.orgs.create({ id: "initech", name: "Initech", planId: "pro" });
      const { secret: before } = await flux.keys.create().forOrg("globex").issue();
      const { secret: neighbour } = await flux.keys.create().forOrg("initech").issue();
      await flux.orgs.suspend("globex");
      const { secret: after } = await flux.keys.create().forOrg("globex").issue();
      expect((await denial(flux, before))?.code).toBe("org_suspended");
      expect((await denial(flux, after))?.code).toBe("org_suspended");
      expect(await denial(flux, neighbour)).toBeNull();
      expect((await flux.orgs.get("globex")).suspendedReason).toBeNull();
    },
  );

  it.skipIf(!store.available)(
    "suspending twice or resuming an active org changes nothing; unknown orgs are 404",
    async () => {
      await flux.orgs.create({ id: "umbrella", name: "Umbrella" });
      const first = await flux.orgs.suspend("umbrella", { reason: "one" });
      const second = await flux.orgs.suspend("umbrella", { reason: "two" });
      expect(second.suspendedAt?.getTime()).toBe(first.suspendedAt?.getTime());
      expect(second.suspendedReason).toBe("one");
      await flux.orgs.resume("umbrella");
      await flux.orgs.resume("umbrella");
      const actions = (await flux.audit.list({ orgId: "umbrella" })).items.map((entry) => entry.action);
      expect(actions.filter((a) => a === "org.suspended")).toHaveLength(1);
      expect(actions.filter((a) => a === "org.resumed")).toHaveLength(1);
      await expect(flux.orgs.suspend("nope")).rejects.toMatchObject({ code: "not_found" });
      await expect(flux.orgs.suspend("umbrella", { reason: "x".repeat(600) })).rejects.toMatchObject({
        code: "invalid_request",
      });
    },
  );
});

describe.skipIf(!hasPostgres)("org suspension across instances on PostgreSQL", () => {
  const postgres = STORES.find((store) => store.name === "postgres")!;
  let flux: Flux;
  let peer: Flux;
  let teardown: () => Promise<void>;

  beforeAll(async () => {
    const target = await postgres.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options());
    peer = await createFlux(target.options({ migrate: false }));
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      rateLimits: [{ name: "rpm", limit: 1000, window: "1m" }],
    });
  });
  afterAll(async () => {
    await peer?.close();
    await flux?.close();
    await teardown?.();
  });

  it("another instance refuses the org's keys within 1 s of the suspension", async () => {
    await flux.orgs.create({ id: "hooli", name: "Hooli", planId: "pro" });
    const { secret } = await flux.keys.create().forOrg("hooli").issue();
    expect((await peer.keys.verify(secret)).orgId).toBe("hooli"); // cached on the peer
    await flux.orgs.suspend("hooli");
    const start = Date.now();
    while ((await denial(peer, secret))?.code !== "org_suspended") {
      expect(Date.now() - start).toBeLessThan(1_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await flux.orgs.resume("hooli");
    const resumedAt = Date.now();
    while ((await denial(peer, secret)) !== null) {
      expect(Date.now() - resumedAt).toBeLessThan(1_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
});
