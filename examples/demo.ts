/**
 * The demo on the embedded defaults (PGlite in memory): a plan, an org, a key, a verification.
 * Run with `pnpm start`.
 */
import { createFlux } from "@flux-keys/core";

const flux = await createFlux();
try {
  await flux.plans.upsert({
    id: "pro",
    name: "Pro",
    scopes: ["read:events", "write:events", "write:configs"],
    rateLimits: [
      { name: "burst", limit: 10, window: "1s" },
      { name: "sustained", limit: 1000, window: "1h" },
    ],
    entitlements: ["bulk_export"],
  });
  const org = await flux.orgs.create({ name: "Acme Inc.", planId: "pro" });
  const { key, secret } = await flux.keys
    .create()
    .forOrg(org.id)
    .named("Acme production")
    .withScopes(["read:events", "write:configs"])
    .expiresInDays(90)
    .issue();

  console.log(`Issued ${key.id} (${key.start}…${key.last4}) for ${org.name}`);
  console.log(`Secret (shown once): ${secret}\n`);

  const context = await flux.keys.verify(secret);
  console.log("Verified context:", context);
  console.log("bulk_export entitled:", flux.entitlements.checkForKey(context, "bulk_export"));

  const { secret: next } = await flux.keys.rotate(key.id, { gracePeriod: "24h" });
  const old = await flux.keys.verify(secret);
  console.log("\nAfter rotation the old key is in grace until", old.rotation?.sunsetAt.toISOString());
  await flux.keys.verify(next);
  await flux.keys.revoke(key.id, { reason: "demo" });
  const denied = await flux.keys.check(secret);
  console.log("After revoke:", denied.valid ? "still valid?!" : denied.error.toProblem());
} finally {
  await flux.close();
}
