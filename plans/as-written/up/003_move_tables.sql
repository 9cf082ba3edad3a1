-- Phase 4, migrations/002_move_tables.sql, as written (the same four moves as the
-- transaction in Step 2's migrate-to-multi-schema.ts).
ALTER TABLE products SET SCHEMA tenant_shared;
ALTER TABLE product_variants SET SCHEMA tenant_shared;
ALTER TABLE customers SET SCHEMA tenant_kct;
ALTER TABLE orders SET SCHEMA tenant_kct;
