-- Step 2, "3. Update search paths", as written. It names the production database;
-- plan.toml's `database` makes the gate run it on a copy with that name.
ALTER DATABASE kct_production SET search_path TO public, tenant_shared, tenant_kct;
