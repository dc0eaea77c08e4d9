-- Flux Keys: usage buckets (per minute, rolled up per hour) and the ids of applied usage batches.
-- Written to match prisma/schema.prisma exactly (names follow Prisma's conventions).

CREATE TABLE "flux_usage_minutes" (
    "key_id" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "method" TEXT NOT NULL,
    "endpoint" TEXT NOT NULL,
    "status_class" INTEGER NOT NULL,
    "org_id" TEXT NOT NULL,
    "count" BIGINT NOT NULL,
    "latency_sum" DOUBLE PRECISION NOT NULL,
    "latency_max" DOUBLE PRECISION NOT NULL,
    CONSTRAINT "flux_usage_minutes_pkey" PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class")
);

CREATE TABLE "flux_usage_hours" (
    "key_id" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "method" TEXT NOT NULL,
    "endpoint" TEXT NOT NULL,
    "status_class" INTEGER NOT NULL,
    "org_id" TEXT NOT NULL,
    "count" BIGINT NOT NULL,
    "latency_sum" DOUBLE PRECISION NOT NULL,
    "latency_max" DOUBLE PRECISION NOT NULL,
    CONSTRAINT "flux_usage_hours_pkey" PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class")
);

CREATE TABLE "flux_usage_batches" (
    "id" TEXT NOT NULL,
    "applied_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_usage_batches_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "flux_usage_minutes_org_id_at_idx" ON "flux_usage_minutes"("org_id", "at");
CREATE INDEX "flux_usage_minutes_at_idx" ON "flux_usage_minutes"("at");
CREATE INDEX "flux_usage_hours_org_id_at_idx" ON "flux_usage_hours"("org_id", "at");
CREATE INDEX "flux_usage_hours_at_idx" ON "flux_usage_hours"("at");
CREATE INDEX "flux_usage_batches_applied_at_idx" ON "flux_usage_batches"("applied_at");
