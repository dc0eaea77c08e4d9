/** The `limits` option of `createFlux`: one schema holds the names, defaults and checks of rate limiting. */
import { z } from "zod";
import { falseOr, integer, section } from "../options-schema.js";

export type WindowLength = number | "1s" | "1m" | "1h" | "1d";

const SHORTHAND: Record<string, number> = { "1s": 1, "1m": 60, "1h": 3600, "1d": 86400 };

/** Seconds of a window given as a positive integer or a shorthand; null when invalid. */
export function windowLength(window: unknown): number | null {
  if (typeof window === "number") return Number.isInteger(window) && window > 0 ? window : null;
  if (typeof window === "string") return SHORTHAND[window] ?? null;
  return null;
}

const PRE_AUTH_FORM =
  "must be { limit: positive integer, window: seconds or '1s' | '1m' | '1h' | '1d' } or false.";

const preAuthSection = section(
  {
    limit: integer(PRE_AUTH_FORM),
    window: z.custom<WindowLength>((value) => windowLength(value) !== null, { error: PRE_AUTH_FORM }),
    maxAddresses: integer("must be an integer from 1 to 10000000.", 1, 10_000_000).prefault(50_000),
  },
  PRE_AUTH_FORM,
);

const LEASE_FORM = "must be { units: integer from 2 to 1000000 } or false.";

const leaseSection = section({ units: integer(LEASE_FORM, 2, 1_000_000) }, LEASE_FORM);

const limitsSection = section({
  /**
   * What verification does when the limit store fails (Redis down, or the database for quotas
   * kept there):
   * - `'insurance'`: an in-memory limiter per process keeps enforcing the same windows until the
   *   store is back (each process then admits up to the full limit on its own);
   * - `'fail-closed'`: requests of keys with limits are refused with `store_unavailable` (503,
   *   `Retry-After`).
   * @default 'insurance'
   */
  onStoreError: z
    .enum(["insurance", "fail-closed"], { error: "must be 'insurance' or 'fail-closed'." })
    .prefault("insurance"),
  /**
   * Failed authentications allowed per client address (IPv6 grouped by /64) per window, counted
   * only when the adapter passes `clientAddress`. Past it, every attempt from that address is
   * refused with `rate_limited` before any database read. `false` turns it off. `maxAddresses`:
   * addresses counted in this process at most (the least recently failing is forgotten first), so
   * a flood from many addresses cannot grow memory without bound.
   * @default { limit: 30, window: '1m', maxAddresses: 50000 }
   */
  preAuth: falseOr(preAuthSection)
    .prefault({ limit: 30, window: "1m" })
    .transform((preAuth) =>
      preAuth === false
        ? null
        : {
            limit: preAuth.limit,
            windowSeconds: windowLength(preAuth.window) as number,
            maxAddresses: preAuth.maxAddresses,
          },
    ),
  /**
   * Opt-in, with Redis only: each instance takes a key's units from Redis `units` at a time, in
   * one call, and spends them in process, so most requests of a busy key make no round trip.
   * Never more than a window's limit is admitted across instances (a lease is spent only inside
   * the window, or the sliding window's period, that granted it, and before a quota's period
   * ends), but units leased by one instance and not spent there are lost to the others: each
   * instance may leave up to `units - 1` of a window unused, so a key can be refused up to
   * `(units - 1) × instances` early. The RateLimit headers count what this instance holds as
   * remaining. A key with a GCRA window, or a request that costs more than `units`, is decided
   * exactly, one round trip per request. Without Redis the limits are in process and exact
   * anyway, and this option changes nothing. See the README, "Leasing".
   * @default false
   */
  lease: falseOr(leaseSection).prefault(false),
});

export type LimitOptions = z.input<typeof limitsSection>;

export const limitOptionsSchema = limitsSection.prefault({});

export type ResolvedLimitOptions = z.output<typeof limitOptionsSchema>;
