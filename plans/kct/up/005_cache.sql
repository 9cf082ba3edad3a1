-- "cache: materialized views for performance". Each has a unique index so that
-- REFRESH MATERIALIZED VIEW CONCURRENTLY can refresh it without blocking readers.
CREATE MATERIALIZED VIEW cache.product_catalog AS
SELECT p.id,
       p.name,
       p.slug,
       p.category,
       p.base_price,
       count(v.id)              AS variant_count,
       coalesce(sum(v.stock), 0) AS stock,
       min(v.price)             AS min_price,
       max(v.price)             AS max_price
  FROM tenant_shared.products p
  LEFT JOIN tenant_shared.product_variants v ON v.product_id = p.id
 WHERE p.is_active
 GROUP BY p.id;
CREATE UNIQUE INDEX product_catalog_id_idx ON cache.product_catalog (id);

CREATE MATERIALIZED VIEW cache.customer_order_totals AS
SELECT c.id                      AS customer_id,
       count(o.id)               AS order_count,
       coalesce(sum(o.total), 0) AS lifetime_total,
       max(o.placed_at)          AS last_order_at
  FROM tenant_kct.customers c
  LEFT JOIN tenant_kct.orders o
         ON o.customer_id = c.id AND o.status NOT IN ('cancelled', 'refunded')
 GROUP BY c.id;
CREATE UNIQUE INDEX customer_order_totals_customer_id_idx
    ON cache.customer_order_totals (customer_id);

GRANT SELECT ON cache.product_catalog, cache.customer_order_totals TO kct_app, kct_readonly;
