/**
 * Which Vitest project each test file belongs to: what it needs to run. `pnpm test` runs them all;
 * `pnpm test:unit` only `unit`, in seconds. A file not named here is `integration` (PGlite, in
 * process). test/projects.test.ts checks that every file is in exactly one project.
 *
 * - unit: no database, no server — key format, scopes, credentials, headers, signatures, CLI
 *   parsing, the portal's front-end helpers.
 * - integration: an embedded PGlite, HTTP through supertest or a loopback socket.
 * - services: the real PostgreSQL and Redis (and the Redis Cluster, PgBouncer the suites start);
 *   most of these run the same cases on PGlite too.
 * - faults: a fault injected into a real service (TCP proxies that cut replies, killed servers,
 *   outages, skewed clocks, shutdown under load).
 * - e2e: a real browser, example processes started as a user starts them, packed packages.
 * - timing: statistical timing measurements (they want a quiet machine).
 */
export const PROJECTS = {
  unit: [
    "packages/cli/test/cli-unit.test.ts",
    "packages/core/test/credentials.test.ts",
    "packages/core/test/key-cache.test.ts",
    "packages/core/test/key-format.test.ts",
    "packages/core/test/limits-wire.test.ts",
    "packages/core/test/rate-limit-headers.test.ts",
    "packages/core/test/log-redaction.test.ts",
    "packages/core/test/scopes.test.ts",
    "packages/core/test/webhook-signature.test.ts",
    "packages/portal/test/client-facing-url.test.ts",
    "packages/portal/test/client-format.test.ts",
    "test/projects.test.ts",
  ],
  services: [
    "packages/core/test/events.test.ts",
    "packages/core/test/leaks.test.ts",
    "packages/core/test/lifecycle.test.ts",
    "packages/core/test/limits-algorithms.test.ts",
    "packages/core/test/limits-denials.test.ts",
    "packages/core/test/limits-lease.test.ts",
    "packages/core/test/limits-model.test.ts",
    "packages/core/test/limits-redis.test.ts",
    "packages/core/test/observations.test.ts",
    "packages/core/test/org-suspension.test.ts",
    "packages/core/test/schema.test.ts",
    "packages/core/test/telemetry.test.ts",
    "packages/core/test/unknown-keys.test.ts",
    "packages/core/test/usage.test.ts",
    "packages/openfeature/test/provider.test.ts",
    "packages/portal/test/portal.test.ts",
    "packages/stripe/test/meter-sync.test.ts",
    "packages/stripe/test/webhooks.test.ts",
    "packages/cli/test/cli-postgres.test.ts",
    "test/adapters.contract.test.ts",
    "test/adversarial-limits.test.ts",
    "test/events-instances.test.ts",
    "test/invalidation-bus.test.ts",
    "test/pgbouncer.test.ts",
    "test/redis-cluster.test.ts",
    "test/stripe-instances.test.ts",
    "test/usage-instances.test.ts",
  ],
  faults: [
    "packages/core/test/limits-lease-outage.test.ts",
    "packages/core/test/limits-outage.test.ts",
    "packages/core/test/store-failures.test.ts",
    "test/faults-clock-skew.test.ts",
    "test/faults-postgres.test.ts",
    "test/faults-redis-lost-reply.test.ts",
    "test/faults-redis.test.ts",
    "test/faults-shutdown.test.ts",
    "test/usage-outage.test.ts",
  ],
  e2e: [
    "test/example-billing.test.ts",
    "test/examples.test.ts",
    "test/packages.test.ts",
    "test/portal-e2e.test.ts",
    "test/start-script.test.ts",
  ],
  timing: ["test/adversarial-timing.test.ts"],
} as const;

/** Where test files live; every file found there belongs to one project. */
export const TEST_FILES = ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"];

export type ProjectName = keyof typeof PROJECTS | "integration";
