-- Step 2, "3. Update search paths", as written but for the database's name.
-- Changed to run at all: the plan names its production database
-- (ALTER DATABASE kct_production ...); the gate runs on a copy with another name,
-- so the statement takes the name of the current database instead.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path TO public, tenant_shared, tenant_kct',
                   current_database());
END
$$;
