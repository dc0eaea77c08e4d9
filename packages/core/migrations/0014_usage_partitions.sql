-- Usage partitioned by time: the minute and hour buckets become declarative partitioned tables,
-- one partition per UTC month ("flux_usage_minutes_p202603" holds March 2026), so that a query
-- of a range reads only its months and retention drops whole months instead of deleting rows.
-- Columns, keys and indexes are unchanged (prisma/schema.prisma does not model partitions).
-- Partitions are created ahead by the usage maintenance loop, and on demand by the flush before
-- it writes a month that has none (flux_usage_ensure_partitions); existing rows are moved over.

ALTER TABLE "flux_usage_minutes" RENAME TO "flux_usage_minutes_unpartitioned";
ALTER TABLE "flux_usage_minutes_unpartitioned" RENAME CONSTRAINT "flux_usage_minutes_pkey" TO "flux_usage_minutes_unpartitioned_pkey";
ALTER INDEX "flux_usage_minutes_org_id_at_idx" RENAME TO "flux_usage_minutes_unpartitioned_org_id_at_idx";
ALTER INDEX "flux_usage_minutes_at_idx" RENAME TO "flux_usage_minutes_unpartitioned_at_idx";
ALTER TABLE "flux_usage_hours" RENAME TO "flux_usage_hours_unpartitioned";
ALTER TABLE "flux_usage_hours_unpartitioned" RENAME CONSTRAINT "flux_usage_hours_pkey" TO "flux_usage_hours_unpartitioned_pkey";
ALTER INDEX "flux_usage_hours_org_id_at_idx" RENAME TO "flux_usage_hours_unpartitioned_org_id_at_idx";
ALTER INDEX "flux_usage_hours_at_idx" RENAME TO "flux_usage_hours_unpartitioned_at_idx";

CREATE TABLE "flux_usage_minutes" (
    "key_id" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "method" TEXT NOT NULL,
    "endpoint" TEXT NOT NULL,
    "status_class" INTEGER NOT NULL,
    "outcome" TEXT NOT NULL DEFAULT 'allowed',
    "org_id" TEXT NOT NULL,
    "count" BIGINT NOT NULL,
    "units" BIGINT NOT NULL,
    "latency_sum" DOUBLE PRECISION NOT NULL,
    "latency_max" DOUBLE PRECISION NOT NULL,
    CONSTRAINT "flux_usage_minutes_pkey" PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class", "outcome")
) PARTITION BY RANGE ("at");

-- The same columns and defaults, its own keys.
CREATE TABLE "flux_usage_hours" (
    LIKE "flux_usage_minutes" INCLUDING DEFAULTS,
    CONSTRAINT "flux_usage_hours_pkey" PRIMARY KEY ("key_id", "at", "method", "endpoint", "status_class", "outcome")
) PARTITION BY RANGE ("at");

CREATE INDEX "flux_usage_minutes_org_id_at_idx" ON "flux_usage_minutes"("org_id", "at");
CREATE INDEX "flux_usage_minutes_at_idx" ON "flux_usage_minutes"("at");
CREATE INDEX "flux_usage_hours_org_id_at_idx" ON "flux_usage_hours"("org_id", "at");
CREATE INDEX "flux_usage_hours_at_idx" ON "flux_usage_hours"("at");

-- Creates the month partitions of both tables for each of these instants, where missing. One lock
-- for every caller (instances flushing, maintenance loops), held until the statement ends: safe
-- through a transaction pooler. Returns how many partitions it created.
CREATE FUNCTION "flux_usage_ensure_partitions"("months" TIMESTAMPTZ[]) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
  month_utc TIMESTAMP; -- the month's first instant, as UTC wall time (no session time zone involved)
  parent TEXT;
  partition TEXT;
  created INTEGER := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(1181504880); -- 'Flup'
  FOR month_utc IN SELECT DISTINCT date_trunc('month', m AT TIME ZONE 'UTC') FROM unnest("months") AS m LOOP
    FOREACH parent IN ARRAY ARRAY['flux_usage_minutes', 'flux_usage_hours'] LOOP
      partition := parent || '_p' || to_char(month_utc, 'YYYYMM');
      IF to_regclass(quote_ident(partition)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
          partition, parent, month_utc AT TIME ZONE 'UTC', (month_utc + INTERVAL '1 month') AT TIME ZONE 'UTC');
        created := created + 1;
      END IF;
    END LOOP;
  END LOOP;
  RETURN created;
END;
$$;

-- Drops the month partitions of both tables that end at or before "before"; returns how many.
CREATE FUNCTION "flux_usage_drop_partitions"("before" TIMESTAMPTZ) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
  child RECORD;
  dropped INTEGER := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(1181504880);
  FOR child IN
    SELECT c.relname AS name, to_date(substring(c.relname FROM '_p([0-9]{6})$'), 'YYYYMM') AS month_utc
    FROM pg_inherits AS i
    JOIN pg_class AS c ON c.oid = i.inhrelid
    JOIN pg_class AS p ON p.oid = i.inhparent
    WHERE p.relnamespace = to_regnamespace(quote_ident(current_schema()))
      AND p.relname IN ('flux_usage_minutes', 'flux_usage_hours')
      AND c.relname ~ '_p[0-9]{6}$'
  LOOP
    IF (child.month_utc + INTERVAL '1 month') AT TIME ZONE 'UTC' <= "before" THEN
      EXECUTE format('DROP TABLE IF EXISTS %I', child.name);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END;
$$;

-- The months that hold data, and the current one with the next two (the maintenance loop keeps
-- creating ahead from there).
SELECT "flux_usage_ensure_partitions"(ARRAY(
  SELECT DISTINCT date_trunc('month', "at" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM "flux_usage_minutes_unpartitioned"
  UNION SELECT DISTINCT date_trunc('month', "at" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM "flux_usage_hours_unpartitioned"
  UNION SELECT now() UNION SELECT now() + INTERVAL '32 days' UNION SELECT now() + INTERVAL '63 days'
));

INSERT INTO "flux_usage_minutes"
    ("key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units", "latency_sum", "latency_max")
SELECT "key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units", "latency_sum", "latency_max"
FROM "flux_usage_minutes_unpartitioned";
INSERT INTO "flux_usage_hours"
    ("key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units", "latency_sum", "latency_max")
SELECT "key_id", "at", "method", "endpoint", "status_class", "outcome", "org_id", "count", "units", "latency_sum", "latency_max"
FROM "flux_usage_hours_unpartitioned";

DROP TABLE "flux_usage_minutes_unpartitioned";
DROP TABLE "flux_usage_hours_unpartitioned";
