/**
 * The setup the adapter packages' own tests share: embedded PGlite, one org and one key holding
 * `read:events` with a per-minute window.
 */
import { createFlux, type Flux } from "@flux-keys/core";

export async function embeddedFluxWithKey(perMinute: number): Promise<{ flux: Flux; secret: string }> {
  const flux = await createFlux({ database: { pglite: true }, redis: null });
  await flux.orgs.create({ id: "acme", name: "Acme" });
  const { secret } = await flux.keys
    .create()
    .forOrg("acme")
    .withScopes(["read:events"])
    .withRateLimits([{ name: "minute", limit: perMinute, window: "1m" }])
    .issue();
  return { flux, secret };
}
