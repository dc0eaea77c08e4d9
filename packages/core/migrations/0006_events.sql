-- Flux Keys: lifecycle events (outbox), stored webhook endpoints and webhook deliveries.
-- Written to match the LifecycleEvent, WebhookEndpoint and WebhookDelivery models of
-- prisma/schema.prisma exactly (names follow Prisma's conventions).

CREATE TABLE "flux_events" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "org_id" TEXT,
    "key_id" TEXT,
    "data" JSONB NOT NULL DEFAULT '{}',
    "dedupe_key" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "dispatched_at" TIMESTAMPTZ(3),
    CONSTRAINT "flux_events_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "flux_webhook_endpoints" (
    "id" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "secret" TEXT NOT NULL,
    "events" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_webhook_endpoints_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "flux_webhook_deliveries" (
    "id" TEXT NOT NULL,
    "event_id" TEXT NOT NULL,
    "endpoint_id" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_status_code" INTEGER,
    "last_error" TEXT,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL,
    "locked_until" TIMESTAMPTZ(3),
    "delivered_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_webhook_deliveries_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "flux_events_dedupe_key_key" ON "flux_events"("dedupe_key");
CREATE INDEX "flux_events_dispatched_at_created_at_idx" ON "flux_events"("dispatched_at", "created_at");
CREATE INDEX "flux_events_key_id_created_at_idx" ON "flux_events"("key_id", "created_at");
CREATE INDEX "flux_events_created_at_idx" ON "flux_events"("created_at");
CREATE INDEX "flux_webhook_deliveries_status_next_attempt_at_idx" ON "flux_webhook_deliveries"("status", "next_attempt_at");
CREATE UNIQUE INDEX "flux_webhook_deliveries_event_id_endpoint_id_key" ON "flux_webhook_deliveries"("event_id", "endpoint_id");

ALTER TABLE "flux_webhook_deliveries" ADD CONSTRAINT "flux_webhook_deliveries_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "flux_events"("id") ON DELETE CASCADE ON UPDATE CASCADE;
