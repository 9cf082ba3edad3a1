ALTER FUNCTION public.variant_stock(text) RESET search_path;
ALTER FUNCTION public.customer_lifetime_value(text) RESET search_path;

-- Each view, then its table, in the order the shop's transactions lock them: a
-- view of one table and the table of another locked in turn would deadlock with them.
DROP VIEW public.appointments;
ALTER TABLE tenant_kct.appointments SET SCHEMA public;
DROP VIEW public.orders;
ALTER TABLE tenant_kct.orders SET SCHEMA public;
DROP VIEW public.suppliers;
ALTER TABLE tenant_shared.suppliers SET SCHEMA public;
DROP VIEW public.customers;
ALTER TABLE tenant_kct.customers SET SCHEMA public;
DROP VIEW public.order_items;
ALTER TABLE tenant_kct.order_items SET SCHEMA public;
DROP VIEW public.products;
ALTER TABLE tenant_shared.products SET SCHEMA public;
DROP VIEW public.product_variants;
ALTER TABLE tenant_shared.product_variants SET SCHEMA public;
DROP VIEW public.collections;
ALTER TABLE tenant_shared.collections SET SCHEMA public;
DROP VIEW public.measurements;
ALTER TABLE tenant_kct.measurements SET SCHEMA public;
DROP VIEW public.customer_insights;
ALTER TABLE analytics.customer_insights SET SCHEMA public;
DROP VIEW public.product_recommendations;
ALTER TABLE analytics.product_recommendations SET SCHEMA public;

