/**
 * The Stripe webhook handler on PGlite and PostgreSQL: events signed with the SDK's own
 * test-header helper, posted as Web requests; the real `stripe` client (for product look-ups)
 * pointed at a local fake server.
 */
import { createFlux, type Flux, FluxError } from "@flux-keys/core";
import type Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import { createStripeWebhookHandler, findUnmappedPrices, type StripeWebhookHandler } from "../src/index.js";
import {
  type FakeStripeServer,
  fakeStripeClient,
  paymentFailedEvent,
  type SubscriptionEventInput,
  signEvent,
  startFakeStripe,
  subscriptionEvent,
} from "../src/testing/fake-stripe.js";

const SECRET = "whsec_test_0123456789abcdef";
const DAY = 86_400_000;

describe.each(STORES)("Stripe webhooks on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;
  let server: FakeStripeServer;
  let stripe: Stripe;
  let handler: StripeWebhookHandler;
  let now = Date.now();
  let seq = 0;
  const t0 = Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options({ clock: () => now }));
    server = await startFakeStripe();
    stripe = fakeStripeClient(server);
    await flux.plans.upsert({ id: "free", name: "Free", quota: { limit: 100, period: "day" } });
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      entitlements: ["sso"],
      quota: { limit: 100_000, period: "day" },
    });
    await flux.plans.upsert({ id: "team", name: "Team", entitlements: ["sso", "audit_export"] });
    handler = createStripeWebhookHandler(flux, {
      stripe,
      webhookSecret: SECRET,
      plans: { pro_monthly: "pro", team_monthly: "team", ghost_monthly: "ghost" },
      fallbackPlan: "free",
      pastDue: { graceDays: 3 },
    });
  });
  afterAll(async () => {
    handler?.close();
    await flux?.close();
    await server?.close();
    await teardown?.();
  });

  async function org(): Promise<{ id: string; customer: string; secret: string }> {
    seq++;
    const id = `org${seq}`;
    const customer = `cus_${store.name}${seq}`;
    await flux.orgs.create({ id, name: `Org ${seq}`, planId: "free", stripeCustomerId: customer });
    const { secret } = await flux.keys.create().forOrg(id).issue();
    return { id, customer, secret };
  }

  async function post(event: Record<string, unknown>, signature?: string) {
    const signed = signEvent(stripe, SECRET, event);
    const response = await handler(
      new Request("http://localhost/stripe/webhooks", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Stripe-Signature": signature ?? signed.signature },
        body: signed.body,
      }),
    );
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  const sub = (input: Omit<SubscriptionEventInput, "id"> & { id?: string }) =>
    subscriptionEvent({
      id: input.id ?? `evt_${store.name}_${Math.random().toString(36).slice(2)}`,
      ...input,
    });

  /** Signs `event` and posts it to another handler than the suite's (one with its own policy). */
  async function deliverTo(target: StripeWebhookHandler, event: Record<string, unknown>) {
    const signed = signEvent(stripe, SECRET, event);
    return target(
      new Request("http://localhost/", {
        method: "POST",
        headers: { "Stripe-Signature": signed.signature },
        body: signed.body,
      }),
    );
  }

  /** The pro subscription of `customer` in `status`, as of `created` (seconds). */
  const proState = (customer: string, status: string, created: number) =>
    sub({ type: "customer.subscription.updated", created, customer, status, lookupKey: "pro_monthly" });

  /** A handler of its own past-due policy, for the pro plan with the free plan as fallback. */
  const handlerWith = (pastDue: NonNullable<Parameters<typeof createStripeWebhookHandler>[1]["pastDue"]>) =>
    createStripeWebhookHandler(flux, {
      stripe,
      webhookSecret: SECRET,
      plans: { pro_monthly: "pro" },
      fallbackPlan: "free",
      pastDue,
    });

  it.skipIf(!store.available)(
    "a subscription upgrades the org: the key's next verify has the new plan",
    async () => {
      const acme = await org();
      const before = await flux.keys.verify(acme.secret);
      expect(before.plan?.id).toBe("free");
      const result = await post(
        sub({
          type: "customer.subscription.created",
          created: t0,
          customer: acme.customer,
          status: "active",
          lookupKey: "pro_monthly",
        }),
      );
      expect(result).toEqual({ status: 200, body: { received: true, outcome: "applied" } });
      const after = await flux.keys.verify(acme.secret);
      expect(after.plan?.id).toBe("pro");
      expect(after.entitlements).toContain("sso");
      expect(after.rateLimit?.quota?.limit).toBe(100_000);
      const audit = await flux.audit.list({ orgId: acme.id });
      expect(audit.items[0]).toMatchObject({
        action: "org.plan_changed",
        actor: { type: "system", id: "stripe" },
        details: {
          planId: { from: "free", to: "pro" },
          status: "active",
          eventType: "customer.subscription.created",
        },
      });
    },
  );

  it.skipIf(!store.available)("a replayed event changes nothing (idempotent by event id)", async () => {
    const acme = await org();
    const event = sub({
      type: "customer.subscription.created",
      created: t0,
      customer: acme.customer,
      status: "active",
      lookupKey: "pro_monthly",
    });
    expect((await post(event)).body.outcome).toBe("applied");
    const downgrade = sub({
      type: "customer.subscription.updated",
      created: t0 + 10,
      customer: acme.customer,
      status: "active",
      lookupKey: "team_monthly",
    });
    expect((await post(downgrade)).body.outcome).toBe("applied");
    const audited = (await flux.audit.list({ orgId: acme.id })).items.length;
    // The first event again, twice: it would set `pro` back if it were applied.
    expect((await post(event)).body.outcome).toBe("duplicate");
    expect((await post(event)).body.outcome).toBe("duplicate");
    expect((await flux.orgs.get(acme.id)).planId).toBe("team");
    expect((await flux.audit.list({ orgId: acme.id })).items.length).toBe(audited);
  });

  it.skipIf(!store.available)("a stale update never undoes a newer one (order by event time)", async () => {
    const acme = await org();
    await post(
      sub({
        type: "customer.subscription.created",
        created: t0,
        customer: acme.customer,
        status: "active",
        lookupKey: "pro_monthly",
      }),
    );
    // The cancellation (t0 + 20) arrives before the upgrade to team (t0 + 10) that preceded it.
    const canceled = await post(
      sub({
        type: "customer.subscription.updated",
        created: t0 + 20,
        customer: acme.customer,
        status: "canceled",
        lookupKey: "pro_monthly",
      }),
    );
    expect(canceled.body.outcome).toBe("applied");
    const late = await post(
      sub({
        type: "customer.subscription.updated",
        created: t0 + 10,
        customer: acme.customer,
        status: "active",
        lookupKey: "team_monthly",
      }),
    );
    expect(late.body.outcome).toBe("stale");
    expect((await flux.orgs.get(acme.id)).planId).toBe("free");
    expect((await flux.keys.verify(acme.secret)).plan?.id).toBe("free");
  });

  it.skipIf(!store.available)(
    "in the same second, created never undoes updated, and deleted wins",
    async () => {
      const acme = await org();
      await post(
        sub({
          type: "customer.subscription.updated",
          created: t0,
          customer: acme.customer,
          status: "active",
          lookupKey: "team_monthly",
        }),
      );
      const created = await post(
        sub({
          type: "customer.subscription.created",
          created: t0,
          customer: acme.customer,
          status: "incomplete",
          lookupKey: "team_monthly",
        }),
      );
      expect(created.body.outcome).toBe("stale");
      expect((await flux.orgs.get(acme.id)).planId).toBe("team");
      await post(
        sub({
          type: "customer.subscription.deleted",
          created: t0 + 5,
          customer: acme.customer,
          status: "canceled",
          lookupKey: "team_monthly",
        }),
      );
      const updated = await post(
        sub({
          type: "customer.subscription.updated",
          created: t0 + 5,
          customer: acme.customer,
          status: "active",
          lookupKey: "team_monthly",
        }),
      );
      expect(updated.body.outcome).toBe("stale");
      expect((await flux.orgs.get(acme.id)).planId).toBe("free");
    },
  );

  it.skipIf(!store.available)(
    "past_due keeps the plan for the grace days, then falls back; paying restores it",
    async () => {
      const acme = await org();
      await post(
        sub({
          type: "customer.subscription.created",
          created: t0,
          customer: acme.customer,
          status: "active",
          lookupKey: "pro_monthly",
        }),
      );
      const failed = await post(
        paymentFailedEvent({ id: `evt_pf_${store.name}${seq}`, created: t0 + 30, customer: acme.customer }),
      );
      expect(failed.body.outcome).toBe("applied");
      expect((await flux.orgs.get(acme.id)).planId).toBe("pro");
      await post(
        sub({
          type: "customer.subscription.updated",
          created: t0 + 31,
          customer: acme.customer,
          status: "past_due",
          lookupKey: "pro_monthly",
        }),
      );
      expect(await handler.enforcePastDue()).toBe(0);
      expect((await flux.orgs.get(acme.id)).planId).toBe("pro");

      now += 3 * DAY + 60_000;
      try {
        expect(await handler.enforcePastDue()).toBeGreaterThanOrEqual(1);
        expect((await flux.orgs.get(acme.id)).planId).toBe("free");
        expect((await flux.keys.verify(acme.secret)).plan?.id).toBe("free");
        const [entry] = (await flux.audit.list({ orgId: acme.id })).items;
        expect(entry).toMatchObject({
          action: "org.plan_changed",
          actor: { type: "system", id: "stripe" },
          details: { reason: "past_due_grace_ended", planId: { from: "pro", to: "free" } },
        });
        expect(await handler.enforcePastDue()).toBe(0);
        await post(
          sub({
            type: "customer.subscription.updated",
            created: t0 + 90,
            customer: acme.customer,
            status: "active",
            lookupKey: "pro_monthly",
          }),
        );
        expect((await flux.orgs.get(acme.id)).planId).toBe("pro");
      } finally {
        now -= 3 * DAY + 60_000;
      }
    },
  );

  it.skipIf(!store.available)("a trial ending is recorded in the audit log; trialing pays", async () => {
    const acme = await org();
    await post(
      sub({
        type: "customer.subscription.created",
        created: t0,
        customer: acme.customer,
        status: "trialing",
        lookupKey: "team_monthly",
      }),
    );
    expect((await flux.orgs.get(acme.id)).planId).toBe("team");
    const ending = await post(
      sub({
        type: "customer.subscription.trial_will_end",
        created: t0 + 1,
        customer: acme.customer,
        status: "trialing",
        lookupKey: "team_monthly",
      }),
    );
    expect(ending.body.outcome).toBe("recorded");
    expect((await flux.audit.list({ orgId: acme.id })).items[0]).toMatchObject({
      action: "billing.customer.subscription.trial_will_end",
      actor: { type: "system", id: "stripe" },
    });
    // Trial over without a payment method: Stripe pauses the subscription.
    await post(
      sub({
        type: "customer.subscription.updated",
        created: t0 + 2,
        customer: acme.customer,
        status: "paused",
        lookupKey: "team_monthly",
      }),
    );
    expect((await flux.orgs.get(acme.id)).planId).toBe("free");
  });

  it.skipIf(!store.available)("the end of an older subscription leaves the one in force alone", async () => {
    const acme = await org();
    await post(
      sub({
        type: "customer.subscription.created",
        created: t0,
        customer: acme.customer,
        subscription: "sub_old",
        status: "active",
        lookupKey: "pro_monthly",
      }),
    );
    await post(
      sub({
        type: "customer.subscription.created",
        created: t0 + 10,
        customer: acme.customer,
        subscription: "sub_new",
        status: "active",
        lookupKey: "team_monthly",
      }),
    );
    const ended = await post(
      sub({
        type: "customer.subscription.deleted",
        created: t0 + 20,
        customer: acme.customer,
        subscription: "sub_old",
        status: "canceled",
        lookupKey: "pro_monthly",
      }),
    );
    expect(ended.body.outcome).toBe("ignored");
    expect((await flux.orgs.get(acme.id)).planId).toBe("team");
  });

  it.skipIf(!store.available)(
    "past due with afterGrace: 'suspend' refuses the org's keys after the grace, until it is paid",
    async () => {
      const suspending = handlerWith({ graceDays: 0, afterGrace: "suspend", checkInterval: null });
      const acme = await org();
      const deliver = (event: Record<string, unknown>) => deliverTo(suspending, event);
      const state = (status: string, created: number) => proState(acme.customer, status, created);
      await deliver({ ...state("active", t0 - 100), type: "customer.subscription.created" });
      expect((await flux.orgs.get(acme.id)).planId).toBe("pro");
      expect((await flux.keys.verify(acme.secret)).plan?.id).toBe("pro"); // cached
      // Zero grace days: past due means suspended at once. The plan stays, the keys are refused.
      await deliver(state("past_due", t0 - 99));
      const suspended = await flux.orgs.get(acme.id);
      expect(suspended.planId).toBe("pro");
      expect(suspended.suspendedReason).toBe("past_due");
      await expect(flux.keys.verify(acme.secret)).rejects.toMatchObject({
        code: "org_suspended",
        status: 403,
      });
      // Paid again: resumed, with the plan it had.
      await deliver(state("active", t0 - 98));
      expect((await flux.orgs.get(acme.id)).suspendedAt).toBeNull();
      expect((await flux.keys.verify(acme.secret)).plan?.id).toBe("pro");
      const actions = (await flux.audit.list({ orgId: acme.id })).items.map((entry) => entry.action);
      expect(actions).toEqual(expect.arrayContaining(["org.suspended", "org.resumed"]));

      // An operator's suspension is not lifted by a payment.
      await deliver(state("past_due", t0 - 97));
      await flux.orgs.resume(acme.id);
      await flux.orgs.suspend(acme.id, { reason: "abuse" });
      await deliver(state("active", t0 - 96));
      expect((await flux.orgs.get(acme.id)).suspendedReason).toBe("abuse");
      await expect(flux.keys.verify(acme.secret)).rejects.toMatchObject({ code: "org_suspended" });
      await flux.orgs.resume(acme.id);
      suspending.close();
    },
  );

  it.skipIf(!store.available)(
    "the past-due sweep suspends an org whose grace ended without an event (afterGrace: 'suspend')",
    async () => {
      const suspending = handlerWith({ graceDays: 2, afterGrace: "suspend", checkInterval: null });
      const acme = await org();
      await deliverTo(suspending, proState(acme.customer, "active", t0 - 50));
      await deliverTo(suspending, proState(acme.customer, "past_due", Math.floor(now / 1000)));
      expect((await flux.keys.verify(acme.secret)).plan?.id).toBe("pro"); // in grace
      expect(await suspending.enforcePastDue()).toBe(0);
      now += 2 * DAY + 1_000;
      try {
        expect(await suspending.enforcePastDue()).toBe(1);
        expect(await suspending.enforcePastDue()).toBe(0);
        await expect(flux.keys.verify(acme.secret)).rejects.toMatchObject({ code: "org_suspended" });
        expect((await flux.orgs.get(acme.id)).planId).toBe("pro");
      } finally {
        now -= 2 * DAY + 1_000;
        suspending.close();
      }
    },
  );

  it.skipIf(!store.available)(
    "the handler ends a past-due grace by itself, every pastDue.checkInterval",
    async () => {
      const timed = handlerWith({ graceDays: 1, checkInterval: "100ms" });
      try {
        const acme = await org();
        for (const [offset, status] of [
          [-50, "active"],
          [-49, "past_due"],
        ] as const) {
          const response = await deliverTo(timed, {
            ...proState(acme.customer, status, t0 + offset),
            ...(offset === -50 ? { type: "customer.subscription.created" } : {}),
          });
          expect(response.status).toBe(200);
        }
        expect((await flux.orgs.get(acme.id)).planId).toBe("pro");
        now += DAY + 60_000;
        try {
          // Nobody calls enforcePastDue(): the handler's own check moves the org.
          const deadline = Date.now() + 5_000;
          while ((await flux.orgs.get(acme.id)).planId !== "free" && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          expect((await flux.orgs.get(acme.id)).planId).toBe("free");
        } finally {
          now -= DAY + 60_000;
        }
      } finally {
        timed.close();
      }
    },
  );

  it.skipIf(!store.available)("a bad or missing signature is a 400 problem and changes nothing", async () => {
    const acme = await org();
    const event = sub({
      type: "customer.subscription.created",
      created: t0,
      customer: acme.customer,
      status: "active",
      lookupKey: "pro_monthly",
    });
    const forged = stripe.webhooks.generateTestHeaderString({
      payload: JSON.stringify(event),
      secret: "whsec_wrong_secret_000",
    });
    const wrong = await post(event, forged);
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({
      code: "invalid_request",
      status: 400,
      detail: "The Stripe signature is not valid.",
    });
    expect(JSON.stringify(wrong.body)).not.toContain(SECRET);
    const missing = await handler(
      new Request("http://localhost/", { method: "POST", body: JSON.stringify(event) }),
    );
    expect(missing.status).toBe(400);
    expect(missing.headers.get("content-type")).toBe("application/problem+json");
    const old = signEvent(stripe, SECRET, event, Math.floor(Date.now() / 1000) - 3600);
    expect((await post(event, old.signature)).status).toBe(400);
    expect((await flux.orgs.get(acme.id)).planId).toBe("free");
    expect((await handler(new Request("http://localhost/"))).status).toBe(400);
  });

  it.skipIf(!store.available)("an unknown customer is acknowledged and changes nothing", async () => {
    const result = await post(
      sub({
        type: "customer.subscription.created",
        created: t0,
        customer: "cus_nobody",
        status: "active",
        lookupKey: "pro_monthly",
      }),
    );
    expect(result).toEqual({ status: 200, body: { received: true, outcome: "unknown_customer" } });
  });

  it.skipIf(!store.available)(
    "a price mapped to a missing plan is refused (Stripe retries) until the plan exists",
    async () => {
      const acme = await org();
      const event = sub({
        type: "customer.subscription.created",
        created: t0,
        customer: acme.customer,
        status: "active",
        lookupKey: "ghost_monthly",
      });
      const refused = await post(event);
      expect(refused.status).toBe(404);
      expect(refused.body).toMatchObject({ code: "not_found" });
      expect((await flux.orgs.get(acme.id)).planId).toBe("free");
      await flux.plans.upsert({ id: "ghost", name: "Ghost" });
      expect((await post(event)).body.outcome).toBe("applied");
      expect((await flux.orgs.get(acme.id)).planId).toBe("ghost");
    },
  );

  it.skipIf(!store.available)(
    "plans from product metadata (read through the Stripe client), and unmapped prices reported",
    async () => {
      const acme = await org();
      server.products.set("prod_team", { id: "prod_team", metadata: { flux_plan: "team" } });
      await post(
        sub({
          type: "customer.subscription.created",
          created: t0,
          customer: acme.customer,
          status: "active",
          lookupKey: null,
          product: "prod_team",
        }),
      );
      expect((await flux.orgs.get(acme.id)).planId).toBe("team");
      expect(server.requests.some((r) => r.method === "GET" && r.path === "/v1/products/prod_team")).toBe(
        true,
      );

      server.products.set("prod_misc", { id: "prod_misc", metadata: {} });
      server.prices = [
        {
          id: "price_pro",
          object: "price",
          lookup_key: "pro_monthly",
          metadata: {},
          product: "prod_x",
          active: true,
        },
        {
          id: "price_meta",
          object: "price",
          lookup_key: null,
          metadata: { flux_plan: "pro" },
          product: "prod_x",
          active: true,
        },
        {
          id: "price_orphan",
          object: "price",
          lookup_key: "legacy",
          metadata: {},
          product: "prod_misc",
          active: true,
        },
      ];
      expect(await findUnmappedPrices({ stripe, plans: { pro_monthly: "pro" } })).toEqual([
        { id: "price_orphan", lookupKey: "legacy", productId: "prod_misc" },
      ]);
    },
  );

  it.skipIf(!store.available)("orgs store their Stripe customer: validated, unique, audited", async () => {
    await flux.orgs.create({ id: `plain_${store.name}`, name: "Plain" });
    const updated = await flux.orgs.update(`plain_${store.name}`, { stripeCustomerId: "cus_plain1" });
    expect(updated.stripeCustomerId).toBe("cus_plain1");
    expect((await flux.orgs.findByStripeCustomer("cus_plain1"))?.id).toBe(`plain_${store.name}`);
    const bad = await flux.orgs
      .update(`plain_${store.name}`, { stripeCustomerId: "sk_live_oops" })
      .catch((e) => e);
    expect(bad).toBeInstanceOf(FluxError);
    expect(bad.code).toBe("invalid_request");
    expect(bad.message).not.toContain("sk_live_oops");
    const acme = await org();
    const taken = await flux.orgs.update(acme.id, { stripeCustomerId: "cus_plain1" }).catch((e) => e);
    expect(taken).toMatchObject({ code: "key_conflict", status: 409 });
    expect((await flux.orgs.get(acme.id)).stripeCustomerId).toBe(acme.customer);
    expect((await flux.audit.list({ orgId: `plain_${store.name}` })).items[0]?.details).toMatchObject({
      stripeCustomerId: { from: null, to: "cus_plain1" },
    });
    await flux.orgs.update(`plain_${store.name}`, { stripeCustomerId: null });
    expect(await flux.orgs.findByStripeCustomer("cus_plain1")).toBeNull();
  });

  it.skipIf(!store.available)("options are checked once, with a code", () => {
    expect(() =>
      createStripeWebhookHandler(flux, { stripe, webhookSecret: SECRET, plans: {}, bogus: 1 } as never),
    ).toThrow(expect.objectContaining({ code: "unknown_option" }));
    expect(() =>
      createStripeWebhookHandler(flux, { stripe: {} as Stripe, webhookSecret: SECRET, plans: {} }),
    ).toThrow(expect.objectContaining({ code: "invalid_option" }));
  });
});
