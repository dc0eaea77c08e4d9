-- The invalidation bus: every committed change to what verification caches (keys, orgs, plans,
-- entitlement overrides) sends a NOTIFY from the same transaction, so it is delivered if and only
-- if the change commits, whichever process made it (an app instance, the CLI, plain SQL). The
-- channel is named from the schema the tables live in, never from a per-process setting:
-- 'flux_inv_' + the first 16 hex digits of md5(schema) (short enough for any schema name).
-- Payloads: 'key:<id>', 'org:<id>', 'plan:<id>', and 'issued:<first 16 hex digits of the digest>'
-- for a new key (what every instance's digest filter needs; never the whole digest).
CREATE FUNCTION "flux_notify_invalidation"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  channel TEXT := 'flux_inv_' || left(md5(TG_TABLE_SCHEMA), 16);
  changed RECORD;
BEGIN
  IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
  IF TG_TABLE_NAME = 'flux_api_keys' THEN
    IF TG_OP = 'INSERT' THEN
      PERFORM pg_notify(channel, 'issued:' || left(changed."digest", 16));
    ELSE
      PERFORM pg_notify(channel, 'key:' || changed."id");
    END IF;
  ELSIF TG_TABLE_NAME = 'flux_orgs' THEN
    PERFORM pg_notify(channel, 'org:' || changed."id");
  ELSIF TG_TABLE_NAME = 'flux_plans' THEN
    PERFORM pg_notify(channel, 'plan:' || changed."id");
  ELSIF TG_TABLE_NAME = 'flux_org_entitlements' THEN
    PERFORM pg_notify(channel, 'org:' || changed."org_id");
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER "flux_api_keys_insert_notify" AFTER INSERT ON "flux_api_keys"
  FOR EACH ROW EXECUTE FUNCTION "flux_notify_invalidation"();
-- Usage bookkeeping (last_used_at, and the updated_at it bumps) changes nothing verification reads.
CREATE TRIGGER "flux_api_keys_update_notify" AFTER UPDATE ON "flux_api_keys"
  FOR EACH ROW WHEN (
    (to_jsonb(OLD) - 'last_used_at' - 'updated_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at' - 'updated_at')
  ) EXECUTE FUNCTION "flux_notify_invalidation"();
CREATE TRIGGER "flux_api_keys_delete_notify" AFTER DELETE ON "flux_api_keys"
  FOR EACH ROW EXECUTE FUNCTION "flux_notify_invalidation"();
CREATE TRIGGER "flux_orgs_notify" AFTER UPDATE OR DELETE ON "flux_orgs"
  FOR EACH ROW EXECUTE FUNCTION "flux_notify_invalidation"();
CREATE TRIGGER "flux_plans_notify" AFTER UPDATE OR DELETE ON "flux_plans"
  FOR EACH ROW EXECUTE FUNCTION "flux_notify_invalidation"();
CREATE TRIGGER "flux_org_entitlements_notify" AFTER INSERT OR UPDATE OR DELETE ON "flux_org_entitlements"
  FOR EACH ROW EXECUTE FUNCTION "flux_notify_invalidation"();
