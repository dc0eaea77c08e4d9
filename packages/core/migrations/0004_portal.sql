-- Flux Keys: customer portal links (single use, digest only) and portal sessions.
-- Written to match the PortalLink and PortalSession models of prisma/schema.prisma exactly.

CREATE TABLE "flux_portal_links" (
    "id" TEXT NOT NULL,
    "org_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "return_url" TEXT,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_portal_links_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "flux_portal_sessions" (
    "id" TEXT NOT NULL,
    "org_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "return_url" TEXT,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "flux_portal_sessions_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "flux_portal_links_org_id_idx" ON "flux_portal_links"("org_id");
CREATE INDEX "flux_portal_links_expires_at_idx" ON "flux_portal_links"("expires_at");
CREATE INDEX "flux_portal_sessions_org_id_idx" ON "flux_portal_sessions"("org_id");
CREATE INDEX "flux_portal_sessions_expires_at_idx" ON "flux_portal_sessions"("expires_at");

ALTER TABLE "flux_portal_links" ADD CONSTRAINT "flux_portal_links_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "flux_orgs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "flux_portal_sessions" ADD CONSTRAINT "flux_portal_sessions_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "flux_orgs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
