/**
 * Mounting the metrics endpoint more than once on one instance (two adapters, a re-mount in
 * tests) shares one registry: the instruments feed it once, not once per mount.
 */
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlux, createPrometheusRegistry, type Flux, prometheusHandler } from "../src/index.js";

describe("Prometheus registry per instance", () => {
  let flux: Flux;
  beforeAll(async () => {
    flux = await createFlux({ database: { pglite: true }, redis: null });
  });
  afterAll(async () => {
    await flux?.close();
  });

  it("gives the instance's own registry to every mount without one", async () => {
    const first = createPrometheusRegistry(flux);
    const second = createPrometheusRegistry(flux);
    expect(second).toBe(first);
    expect(prometheusHandler(flux).registry).toBe(first);
    // A registry the app passes is fed as well, once.
    const own = new Registry();
    expect(createPrometheusRegistry(flux, { registry: own })).toBe(own);
    expect(createPrometheusRegistry(flux, { registry: own })).toBe(own);
    await flux.keys.check("flux_live_not-a-key");
    const text = await first.metrics();
    expect(text).toMatch(/flux_verifications_total\{outcome="malformed"\} 1\n/);
    expect(await own.metrics()).toMatch(/flux_verifications_total\{outcome="malformed"\} 1\n/);
  });
});
