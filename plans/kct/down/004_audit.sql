-- In the order the shop's transactions lock these tables (see up/004).
DROP TRIGGER appointments_audit ON tenant_kct.appointments;
DROP TRIGGER orders_audit ON tenant_kct.orders;
DROP TRIGGER suppliers_audit ON tenant_shared.suppliers;
DROP TRIGGER customers_audit ON tenant_kct.customers;
DROP TRIGGER order_items_audit ON tenant_kct.order_items;
DROP TRIGGER products_audit ON tenant_shared.products;
DROP TRIGGER product_variants_audit ON tenant_shared.product_variants;
DROP TRIGGER collections_audit ON tenant_shared.collections;
DROP TRIGGER measurements_audit ON tenant_kct.measurements;

DROP FUNCTION audit.record_change();
DROP TABLE audit.change_history;
DROP TABLE audit.audit_log;
