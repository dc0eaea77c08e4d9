-- Billing: the org's Stripe customer, the subscription state per org (ordered by event time),
-- the provider events already handled, and the usage sent to billing meters. Written to match
-- the Org, BillingState, BillingEvent and MeterSend models of prisma/schema.prisma exactly.

ALTER TABLE "flux_orgs" ADD COLUMN "stripe_customer_id" TEXT;
CREATE UNIQUE INDEX "flux_orgs_stripe_customer_id_key" ON "flux_orgs"("stripe_customer_id");

CREATE TABLE "flux_billing_states" (
    "org_id" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "subscription_id" TEXT,
    "status" TEXT NOT NULL,
    "paid_plan_id" TEXT,
    "past_due_since" TIMESTAMPTZ(3),
    "event_at" TIMESTAMPTZ(3) NOT NULL,
    "event_id" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_billing_states_pkey" PRIMARY KEY ("org_id")
);
CREATE INDEX "flux_billing_states_status_idx" ON "flux_billing_states"("status");
ALTER TABLE "flux_billing_states" ADD CONSTRAINT "flux_billing_states_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "flux_orgs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "flux_billing_events" (
    "id" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "org_id" TEXT,
    "outcome" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_billing_events_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "flux_billing_events_received_at_idx" ON "flux_billing_events"("received_at");

CREATE TABLE "flux_meter_sends" (
    "meter" TEXT NOT NULL,
    "org_id" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "seq" INTEGER NOT NULL,
    "value" BIGINT NOT NULL,
    "identifier" TEXT NOT NULL,
    "customer_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sent_at" TIMESTAMPTZ(3),
    CONSTRAINT "flux_meter_sends_pkey" PRIMARY KEY ("meter", "org_id", "at", "seq")
);
CREATE UNIQUE INDEX "flux_meter_sends_identifier_key" ON "flux_meter_sends"("identifier");
CREATE INDEX "flux_meter_sends_meter_sent_at_idx" ON "flux_meter_sends"("meter", "sent_at");
CREATE INDEX "flux_meter_sends_meter_at_idx" ON "flux_meter_sends"("meter", "at");
