-- An org can be suspended (by an operator, or by billing after a past-due grace): every key of a
-- suspended org is refused with `org_suspended` until the org is resumed. The org's plan is kept,
-- so resuming restores exactly what it had. The org trigger of 0009 tells every instance.

ALTER TABLE "flux_orgs" ADD COLUMN "suspended_at" TIMESTAMPTZ(3);
ALTER TABLE "flux_orgs" ADD COLUMN "suspended_reason" TEXT;
