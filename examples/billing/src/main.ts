/**
 * `pnpm --filter @flux-keys/example-billing start`: a signed Stripe subscription event upgrades an
 * org, and its very next request gets the new limits. Stripe itself is played by a local server
 * (`@flux-keys/stripe/testing`); the official client is pointed at it. With a real account, pass
 * `new Stripe(process.env.STRIPE_SECRET_KEY)` and the endpoint's signing secret instead.
 */
import { fakeStripeClient, signEvent, startFakeStripe, subscriptionEvent } from "@flux-keys/stripe/testing";
import { startBillingApp } from "./billing.js";

const webhookSecret = process.env.STRIPE_WEBHOOK_SECRET ?? "whsec_example_0123456789";
const fakeStripe = await startFakeStripe();
const stripe = fakeStripeClient(fakeStripe);
const app = await startBillingApp({
  stripe,
  webhookSecret,
  ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
});

try {
  const org = await app.flux.orgs.create({
    name: "Acme",
    planId: "starter",
    stripeCustomerId: "cus_Acme0001",
  });
  const { secret } = await app.flux.keys.create().forOrg(org.id).issue();
  const limits = async () =>
    (await fetch(`${app.url}/v1/limits`, { headers: { Authorization: `Bearer ${secret}` } })).json();

  console.log("before:", JSON.stringify(await limits()));

  // What Stripe sends when the customer subscribes to the Pro price.
  const event = subscriptionEvent({
    id: `evt_${Date.now()}`,
    type: "customer.subscription.updated",
    created: Math.floor(Date.now() / 1000),
    customer: "cus_Acme0001",
    subscription: "sub_Acme0001",
    status: "active",
    lookupKey: "pro_monthly",
  });
  const { body, signature } = signEvent(stripe, webhookSecret, event);
  const delivered = await fetch(`${app.url}/stripe/webhooks`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Stripe-Signature": signature },
    body,
  });
  console.log("webhook:", delivered.status, JSON.stringify(await delivered.json()));

  console.log("after:", JSON.stringify(await limits()));
  const [change] = (await app.flux.audit.list({ orgId: org.id })).items;
  console.log(
    "audit:",
    change?.action,
    JSON.stringify(change?.actor),
    JSON.stringify(change?.details.planId),
  );
} finally {
  await app.close();
  await fakeStripe.close();
}
