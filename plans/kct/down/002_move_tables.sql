ALTER FUNCTION public.variant_stock(text) RESET search_path;
ALTER FUNCTION public.customer_lifetime_value(text) RESET search_path;

DROP VIEW public.product_recommendations;
DROP VIEW public.customer_insights;
DROP VIEW public.measurements;
DROP VIEW public.appointments;
DROP VIEW public.order_items;
DROP VIEW public.orders;
DROP VIEW public.customers;
DROP VIEW public.collections;
DROP VIEW public.suppliers;
DROP VIEW public.product_variants;
DROP VIEW public.products;

ALTER TABLE analytics.product_recommendations SET SCHEMA public;
ALTER TABLE analytics.customer_insights SET SCHEMA public;
ALTER TABLE tenant_kct.measurements SET SCHEMA public;
ALTER TABLE tenant_kct.appointments SET SCHEMA public;
ALTER TABLE tenant_kct.order_items SET SCHEMA public;
ALTER TABLE tenant_kct.orders SET SCHEMA public;
ALTER TABLE tenant_kct.customers SET SCHEMA public;
ALTER TABLE tenant_shared.collections SET SCHEMA public;
ALTER TABLE tenant_shared.suppliers SET SCHEMA public;
ALTER TABLE tenant_shared.product_variants SET SCHEMA public;
ALTER TABLE tenant_shared.products SET SCHEMA public;
