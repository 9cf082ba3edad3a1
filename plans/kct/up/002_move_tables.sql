-- All eleven tables move, per the plan's lists (order_items with its orders).
-- SET SCHEMA rewrites no data, but locks each table ACCESS EXCLUSIVE until the step
-- commits (lock_timeout bounds the wait). Taken in the order the shop's transactions
-- take them (appointments and orders before customers, products before variants),
-- or a move deadlocks with an order being placed.

ALTER TABLE public.appointments SET SCHEMA tenant_kct;
ALTER TABLE public.orders SET SCHEMA tenant_kct;
ALTER TABLE public.suppliers SET SCHEMA tenant_shared;
ALTER TABLE public.customers SET SCHEMA tenant_kct;
ALTER TABLE public.order_items SET SCHEMA tenant_kct;
ALTER TABLE public.products SET SCHEMA tenant_shared;
ALTER TABLE public.product_variants SET SCHEMA tenant_shared;
ALTER TABLE public.collections SET SCHEMA tenant_shared;
ALTER TABLE public.measurements SET SCHEMA tenant_kct;
ALTER TABLE public.customer_insights SET SCHEMA analytics;
ALTER TABLE public.product_recommendations SET SCHEMA analytics;
-- Sequences, indexes, constraints and triggers move along; views (order_summaries)
-- follow their tables by OID.

-- Sessions opened before this step keep their search_path (an ALTER DATABASE
-- reaches only new sessions; PgBouncer's server connections live up to an hour).
-- For them, a view of the same name stays in public. Simple views like these are
-- automatically updatable, so old sessions can still write through them, and the
-- tables' own defaults still apply to the rows they insert.
CREATE VIEW public.products AS SELECT * FROM tenant_shared.products;
CREATE VIEW public.product_variants AS SELECT * FROM tenant_shared.product_variants;
CREATE VIEW public.suppliers AS SELECT * FROM tenant_shared.suppliers;
CREATE VIEW public.collections AS SELECT * FROM tenant_shared.collections;
CREATE VIEW public.customers AS SELECT * FROM tenant_kct.customers;
CREATE VIEW public.orders AS SELECT * FROM tenant_kct.orders;
CREATE VIEW public.order_items AS SELECT * FROM tenant_kct.order_items;
CREATE VIEW public.appointments AS SELECT * FROM tenant_kct.appointments;
CREATE VIEW public.measurements AS SELECT * FROM tenant_kct.measurements;
CREATE VIEW public.customer_insights AS SELECT * FROM analytics.customer_insights;
CREATE VIEW public.product_recommendations AS SELECT * FROM analytics.product_recommendations;

-- Bodies stored as text are parsed at call time under the caller's search_path;
-- pin them to the new home of the tables they name.
ALTER FUNCTION public.customer_lifetime_value(text) SET search_path = tenant_kct, public;
ALTER FUNCTION public.variant_stock(text) SET search_path = tenant_shared, public;
