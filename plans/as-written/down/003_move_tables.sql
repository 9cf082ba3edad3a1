-- The plan's "Rollback Plan", as written.
-- Changed to run at all: its BEGIN; and COMMIT; are left out, because the runner
-- already runs every step in a transaction of its own.
ALTER TABLE tenant_shared.products SET SCHEMA public;
ALTER TABLE tenant_shared.product_variants SET SCHEMA public;
ALTER TABLE tenant_kct.customers SET SCHEMA public;
ALTER TABLE tenant_kct.orders SET SCHEMA public;
