-- Per-key network rules: the client networks a key may be used from (empty: anywhere).
ALTER TABLE "flux_api_keys" ADD COLUMN "allow_from" TEXT[] DEFAULT ARRAY[]::TEXT[];
