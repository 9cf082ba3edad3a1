-- RESTRICT (the default): if anything is still inside a schema, stop rather than
-- drop it with the schema.
DROP SCHEMA audit;
DROP SCHEMA cache;
DROP SCHEMA analytics;
DROP SCHEMA tenant_kct;
DROP SCHEMA tenant_shared;
