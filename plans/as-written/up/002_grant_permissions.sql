-- Phase 1, "2. Grant permissions", as written.
GRANT ALL ON SCHEMA tenant_shared TO kct_app;
GRANT ALL ON SCHEMA tenant_kct TO kct_app;
GRANT SELECT ON SCHEMA analytics TO kct_readonly;
