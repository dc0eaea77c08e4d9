-- Flux Keys: durable limit counters (quotas without Redis), written by rate-limiter-flexible.
-- Written to match the LimitCounter model of prisma/schema.prisma exactly.

CREATE TABLE "flux_limit_counters" (
    "key" TEXT NOT NULL,
    "points" INTEGER NOT NULL,
    "expire" TIMESTAMPTZ(3),
    CONSTRAINT "flux_limit_counters_pkey" PRIMARY KEY ("key")
);

CREATE INDEX "flux_limit_counters_expire_idx" ON "flux_limit_counters"("expire");
