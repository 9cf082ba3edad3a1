DROP MATERIALIZED VIEW cache.customer_order_totals;
DROP MATERIALIZED VIEW cache.product_catalog;
