-- New sessions find every schema, the tenant's own first. Sessions already open
-- keep their old path, which the compatibility views in public serve. The
-- database's name is taken from the session, not written into the plan.
DO $$
BEGIN
    EXECUTE format(
        'ALTER DATABASE %I SET search_path = "$user", tenant_kct, tenant_shared, analytics, cache, public',
        current_database());
END
$$;
