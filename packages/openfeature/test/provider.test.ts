/**
 * The entitlement provider and flag-aware checks with the SDK's own in-memory provider and
 * multi-provider, on PGlite and PostgreSQL.
 */
import { createFlux, type Flux, type KeyContext } from "@flux-keys/core";
import { ErrorCode, InMemoryProvider, MultiProvider, OpenFeature } from "@openfeature/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STORES } from "../../../test/support/services.js";
import { evaluationContextFor, FluxEntitlementProvider } from "../src/index.js";

describe.each(STORES)("OpenFeature over entitlements on $name", (store) => {
  let flux: Flux;
  let teardown: () => Promise<void>;
  let acme: KeyContext;
  let globex: KeyContext;
  let acmeSecret: string;
  const domain = `flux-${store.name}`;
  const multiDomain = `flux-multi-${store.name}`;

  beforeAll(async () => {
    if (!store.available) return;
    const target = await store.setup();
    teardown = target.teardown;
    flux = await createFlux(target.options());
    await flux.plans.upsert({
      id: "pro",
      name: "Pro",
      entitlements: ["sso", "audit_export"],
      quota: { limit: 5000, period: "month" },
      rateLimits: [{ name: "burst", limit: 20, window: "1s" }],
    });
    await flux.orgs.create({ id: "acme", name: "Acme", planId: "pro" });
    await flux.orgs.create({ id: "globex", name: "Globex", planId: "pro" });
    await flux.orgs.setEntitlement("globex", "audit_export", { granted: false });
    const issued = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();
    acmeSecret = issued.secret;
    acme = await flux.keys.verify(issued.secret);
    globex = await flux.keys.verify((await flux.keys.create().forOrg("globex").issue()).secret);

    await OpenFeature.setProviderAndWait(domain, new FluxEntitlementProvider(flux));
    // Kill switch: sso withheld from globex only (a rule over the context's attributes); a
    // rollout grants beta_reports to acme only; everything else falls through to entitlements.
    const flags = new InMemoryProvider({
      sso: {
        variants: { on: true, off: false },
        defaultVariant: "on",
        disabled: false,
        contextEvaluator: (ctx) =>
          ctx.targetingKey === "globex"
            ? "off"
            : (ctx.entitlements as string[] | undefined)?.includes("sso")
              ? "on"
              : "off",
      },
      beta_reports: {
        variants: { on: true, off: false },
        defaultVariant: "off",
        disabled: false,
        contextEvaluator: (ctx) => (ctx.targetingKey === "acme" ? "on" : "off"),
      },
    });
    await OpenFeature.setProviderAndWait(
      multiDomain,
      new MultiProvider([{ provider: flags }, { provider: new FluxEntitlementProvider(flux) }]),
    );
  });
  afterAll(async () => {
    await OpenFeature.clearProviders();
    await flux?.close();
    await teardown?.();
  });

  it.skipIf(!store.available)(
    "the evaluation context of a key: org as targeting key, attributes, never the secret",
    () => {
      const context = evaluationContextFor(acme);
      expect(context).toEqual({
        targetingKey: "acme",
        orgId: "acme",
        keyId: acme.keyId,
        keyName: acme.name,
        plan: "pro",
        environment: acme.environment,
        scopes: ["read:events"],
        entitlements: ["audit_export", "sso"],
      });
      expect(JSON.stringify(context)).not.toContain(acmeSecret);
      expect(JSON.stringify(context)).not.toContain(acmeSecret.slice(-12));
    },
  );

  it.skipIf(!store.available)("boolean flags answer from entitlements (org id or key context)", async () => {
    const client = OpenFeature.getClient(domain);
    expect(await client.getBooleanValue("audit_export", false, { targetingKey: "acme" })).toBe(true);
    expect(await client.getBooleanValue("audit_export", true, { targetingKey: "globex" })).toBe(false);
    expect(await client.getBooleanValue("audit_export", true, evaluationContextFor(globex))).toBe(false);
    expect(await client.getBooleanValue("nope", true, evaluationContextFor(acme))).toBe(false);
    const missing = await client.getBooleanDetails("sso", true, {});
    expect(missing).toMatchObject({ value: true, errorCode: ErrorCode.TARGETING_KEY_MISSING });
  });

  it.skipIf(!store.available)("number flags answer from plan limits; string flag plan", async () => {
    const client = OpenFeature.getClient(domain);
    expect(await client.getNumberValue("quota.limit", 0, { targetingKey: "acme" })).toBe(5000);
    expect(await client.getNumberValue("rate_limit.burst.limit", 0, evaluationContextFor(acme))).toBe(20);
    expect(
      await client.getNumberDetails("rate_limit.sustained.limit", 7, { targetingKey: "acme" }),
    ).toMatchObject({
      value: 7,
      errorCode: ErrorCode.FLAG_NOT_FOUND,
    });
    expect(await client.getStringValue("plan", "", { targetingKey: "globex" })).toBe("pro");
  });

  it.skipIf(!store.available)(
    "a flag withholds an entitlement from one org only; checkForKey stays pure",
    async () => {
      const flags = OpenFeature.getClient(multiDomain);
      expect(await flux.entitlements.check(acme, "sso", { flags })).toBe(true);
      expect(await flux.entitlements.check(globex, "sso", { flags })).toBe(false);
      // Not a flag: the multi-provider falls through to the entitlements.
      expect(await flux.entitlements.check(acme, "audit_export", { flags })).toBe(true);
      expect(await flux.entitlements.check(globex, "audit_export", { flags })).toBe(false);
      // The pure check knows no flags.
      expect(flux.entitlements.checkForKey(globex, "sso")).toBe(true);
      // Without flags, the key context form answers from the context; the org id form from the database.
      expect(await flux.entitlements.check(globex, "sso")).toBe(true);
      expect(await flux.entitlements.check("globex", "sso")).toBe(true);
      expect(await flux.entitlements.check("globex", "sso", { flags })).toBe(false);
    },
  );

  it.skipIf(!store.available)("a rollout grants an entitlement the plan lacks, to one org", async () => {
    const flags = OpenFeature.getClient(multiDomain);
    expect(await flux.entitlements.check(acme, "beta_reports", { flags })).toBe(true);
    expect(await flux.entitlements.check(globex, "beta_reports", { flags })).toBe(false);
    expect(flux.entitlements.checkForKey(acme, "beta_reports")).toBe(false);
  });

  it.skipIf(!store.available)(
    "with a prefix, other flags are not found (a multi-provider moves on)",
    async () => {
      const provider = new FluxEntitlementProvider(flux, { prefix: "entitlement." });
      const scoped = `flux-prefixed-${store.name}`;
      await OpenFeature.setProviderAndWait(scoped, provider);
      const client = OpenFeature.getClient(scoped);
      expect(await client.getBooleanValue("entitlement.sso", false, { targetingKey: "acme" })).toBe(true);
      expect(await client.getBooleanDetails("sso", false, { targetingKey: "acme" })).toMatchObject({
        errorCode: ErrorCode.FLAG_NOT_FOUND,
      });
    },
  );
});
