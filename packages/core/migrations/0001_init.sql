-- Flux Keys: plans, orgs, entitlement overrides, API keys, audit events.
-- Written to match prisma/schema.prisma exactly (names follow Prisma's conventions).

CREATE TABLE "flux_plans" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "scopes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "rate_limits" JSONB NOT NULL DEFAULT '[]',
    "quota" JSONB,
    "entitlements" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_plans_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "flux_orgs" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "plan_id" TEXT,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_orgs_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "flux_org_entitlements" (
    "org_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "granted" BOOLEAN NOT NULL,
    "expires_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_org_entitlements_pkey" PRIMARY KEY ("org_id", "name")
);

CREATE TABLE "flux_api_keys" (
    "id" TEXT NOT NULL,
    "org_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "digest" TEXT NOT NULL,
    "start" TEXT NOT NULL,
    "last4" TEXT NOT NULL,
    "environment" TEXT NOT NULL,
    "scopes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "rate_limits" JSONB,
    "quota" JSONB,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "expires_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    "revoked_reason" TEXT,
    "replaced_by_id" TEXT,
    "sunset_at" TIMESTAMPTZ(3),
    "created_by_type" TEXT NOT NULL,
    "created_by_id" TEXT,
    "last_used_at" TIMESTAMPTZ(3),
    "version" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_api_keys_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "flux_audit_events" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "org_id" TEXT,
    "key_id" TEXT,
    "action" TEXT NOT NULL,
    "actor_type" TEXT NOT NULL,
    "actor_id" TEXT,
    "ip" TEXT,
    "details" JSONB NOT NULL DEFAULT '{}',
    CONSTRAINT "flux_audit_events_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "flux_orgs_plan_id_idx" ON "flux_orgs"("plan_id");
CREATE UNIQUE INDEX "flux_api_keys_digest_key" ON "flux_api_keys"("digest");
CREATE UNIQUE INDEX "flux_api_keys_replaced_by_id_key" ON "flux_api_keys"("replaced_by_id");
CREATE INDEX "flux_api_keys_org_id_created_at_id_idx" ON "flux_api_keys"("org_id", "created_at" DESC, "id" DESC);
CREATE INDEX "flux_audit_events_org_id_id_idx" ON "flux_audit_events"("org_id", "id");
CREATE INDEX "flux_audit_events_key_id_id_idx" ON "flux_audit_events"("key_id", "id");
CREATE INDEX "flux_audit_events_at_idx" ON "flux_audit_events"("at");

ALTER TABLE "flux_orgs" ADD CONSTRAINT "flux_orgs_plan_id_fkey" FOREIGN KEY ("plan_id") REFERENCES "flux_plans"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "flux_org_entitlements" ADD CONSTRAINT "flux_org_entitlements_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "flux_orgs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "flux_api_keys" ADD CONSTRAINT "flux_api_keys_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "flux_orgs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "flux_api_keys" ADD CONSTRAINT "flux_api_keys_replaced_by_id_fkey" FOREIGN KEY ("replaced_by_id") REFERENCES "flux_api_keys"("id") ON DELETE SET NULL ON UPDATE CASCADE;
