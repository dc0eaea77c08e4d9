-- What adapters observe about keys in use: the clients still using a key during its rotation
-- grace, and the scopes each key actually exercised (for least-privilege suggestions).
CREATE TABLE "flux_key_clients" (
    "key_id" TEXT NOT NULL,
    "address" TEXT NOT NULL,
    "user_agent" TEXT NOT NULL,
    "first_seen_at" TIMESTAMPTZ(3) NOT NULL,
    "last_seen_at" TIMESTAMPTZ(3) NOT NULL,
    "calls" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "flux_key_clients_pkey" PRIMARY KEY ("key_id", "address", "user_agent")
);

CREATE TABLE "flux_key_scope_uses" (
    "key_id" TEXT NOT NULL,
    "scope" TEXT NOT NULL,
    "first_used_at" TIMESTAMPTZ(3) NOT NULL,
    "last_used_at" TIMESTAMPTZ(3) NOT NULL,
    "calls" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "flux_key_scope_uses_pkey" PRIMARY KEY ("key_id", "scope")
);

CREATE INDEX "flux_key_clients_key_id_last_seen_at_idx" ON "flux_key_clients"("key_id", "last_seen_at" DESC);
