-- Outcome of each call: every call whose key was identified is recorded, refused ones included
-- ('rate_limited', 'scope_denied', 'revoked', …). Before this only served calls were recorded, so
-- every existing row is 'allowed'. The outcome is part of the bucket, hence of the primary key.
ALTER TABLE "flux_usage_minutes" ADD COLUMN "outcome" TEXT NOT NULL DEFAULT 'allowed';
ALTER TABLE "flux_usage_minutes" DROP CONSTRAINT "flux_usage_minutes_pkey";
ALTER TABLE "flux_usage_minutes" ADD CONSTRAINT "flux_usage_minutes_pkey"
    PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class", "outcome");
ALTER TABLE "flux_usage_hours" ADD COLUMN "outcome" TEXT NOT NULL DEFAULT 'allowed';
ALTER TABLE "flux_usage_hours" DROP CONSTRAINT "flux_usage_hours_pkey";
ALTER TABLE "flux_usage_hours" ADD CONSTRAINT "flux_usage_hours_pkey"
    PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class", "outcome");
