-- Units: each call's route cost, summed per bucket, for meters that bill by cost instead of by
-- call. Existing rows counted calls of cost 1 as far as anyone can tell: they get units = count.
ALTER TABLE "flux_usage_minutes" ADD COLUMN "units" BIGINT;
UPDATE "flux_usage_minutes" SET "units" = "count";
ALTER TABLE "flux_usage_minutes" ALTER COLUMN "units" SET NOT NULL;
ALTER TABLE "flux_usage_hours" ADD COLUMN "units" BIGINT;
UPDATE "flux_usage_hours" SET "units" = "count";
ALTER TABLE "flux_usage_hours" ALTER COLUMN "units" SET NOT NULL;
