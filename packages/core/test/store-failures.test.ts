/** Configuration mistakes and store outages give typed errors with nothing sensitive in them. */
import { describe, expect, it } from "vitest";
import { DATABASE_URL, freshSchema, hasPostgres } from "../../../test/support/services.js";
import { createFlux, FluxConfigError, FluxError } from "../src/index.js";

describe("options", () => {
  it("reports unknown and invalid options", async () => {
    await expect(createFlux({ databse: {} } as never)).rejects.toMatchObject({ code: "unknown_option" });
    await expect(createFlux({ keyPrefix: "Bad-Prefix" })).rejects.toBeInstanceOf(FluxConfigError);
    await expect(createFlux({ pepper: "short" })).rejects.toMatchObject({ code: "invalid_option" });
    await expect(createFlux({ cache: { ttl: "soon" as never } })).rejects.toMatchObject({
      code: "invalid_option",
    });
  });

  it("does not mutate the caller's options", async () => {
    const options = Object.freeze({ database: Object.freeze({ pglite: true as const }), redis: null });
    const flux = await createFlux(options);
    await flux.close();
    await flux.close();
  });

  it("uses a custom prefix and a pepper", async () => {
    const flux = await createFlux({
      database: { pglite: true },
      redis: null,
      keyPrefix: "acme",
      pepper: "p".repeat(32),
    });
    try {
      await flux.orgs.create({ id: "o", name: "O" });
      const { secret } = await flux.keys.create().forOrg("o").issue();
      expect(secret).toMatch(/^acme_live_/);
      expect((await flux.keys.verify(secret)).orgId).toBe("o");
      expect(flux.keys.digest(secret)).not.toBe(
        (await import("node:crypto")).createHash("sha256").update(secret).digest("hex"),
      );
      expect((await flux.keys.check(secret.replace("acme_", "flux_"))).valid).toBe(false);
    } finally {
      await flux.close();
    }
  });
});

describe.skipIf(!hasPostgres)("PostgreSQL outage", () => {
  it("an unreachable database is store_unavailable, without the connection string", async () => {
    const url = "postgresql://flux_user:hunter2-secret@127.0.0.1:1/nowhere";
    const error = await createFlux({ database: { url }, redis: null }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FluxError);
    expect((error as FluxError).code).toBe("store_unavailable");
    const text = `${(error as Error).message} ${JSON.stringify(error)} ${(error as Error).stack}`;
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("127.0.0.1:1");
  });

  it("after the database goes away, cached keys still verify and the rest is store_unavailable", async () => {
    const { schema, drop } = await freshSchema();
    const flux = await createFlux({ database: { url: DATABASE_URL, schema, poolSize: 2 }, redis: null });
    try {
      await flux.orgs.create({ id: "o", name: "O" });
      const cached = await flux.keys.create().forOrg("o").issue();
      const uncached = await flux.keys.create().forOrg("o").issue();
      await flux.keys.verify(cached.secret);
      // Pull the database out from under the instance.
      await drop();
      const result = await flux.keys.check(uncached.secret);
      expect(result).toMatchObject({ valid: false, error: { code: "store_unavailable", status: 503 } });
      expect((await flux.keys.check(cached.secret)).valid).toBe(true);
      const error = await flux.keys.get(cached.key.id).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "store_unavailable" });
      expect((error as Error).message).not.toMatch(/relation|flux_api_keys|prisma|select/i);
      await expect(flux.keys.verify(uncached.secret)).rejects.toMatchObject({ code: "store_unavailable" });
    } finally {
      await flux.close();
      await drop();
    }
  });
});
