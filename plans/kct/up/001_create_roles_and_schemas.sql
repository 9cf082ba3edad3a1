-- The plan grants to kct_app and kct_readonly but never creates them. Roles belong
-- to the whole cluster, not to this database, so they may exist already (another
-- database on the same server); create them only when missing, and never drop them
-- on rollback: other databases may depend on them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kct_app') THEN
        CREATE ROLE kct_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kct_readonly') THEN
        CREATE ROLE kct_readonly LOGIN;
    END IF;
END
$$;

-- Without IF NOT EXISTS: a schema that is already there means the database is not
-- in the state this plan starts from, and the step should stop rather than adopt it.
CREATE SCHEMA tenant_shared;
CREATE SCHEMA tenant_kct;
CREATE SCHEMA analytics;
CREATE SCHEMA cache;
CREATE SCHEMA audit;
