-- Rotation lineage: the first key of a chain of rotations. Quotas count per lineage, so a rotated
-- key keeps its predecessor's usage (a `total` credit cannot be refilled by rotating).
ALTER TABLE "flux_api_keys" ADD COLUMN "lineage_id" TEXT;
