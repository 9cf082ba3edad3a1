-- Revoke exactly what up/003 granted (not DROP OWNED BY, which would also take back
-- grants these roles held before the migration).
ALTER DEFAULT PRIVILEGES IN SCHEMA cache
    REVOKE SELECT ON TABLES FROM kct_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared, tenant_kct, analytics, cache, audit
    REVOKE SELECT ON TABLES FROM kct_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared, tenant_kct, analytics
    REVOKE USAGE, SELECT ON SEQUENCES FROM kct_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared, tenant_kct, analytics
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM kct_app;

REVOKE SELECT ON public.order_summaries FROM kct_app, kct_readonly;
REVOKE SELECT ON public.products, public.product_variants, public.suppliers, public.collections, public.customers, public.orders, public.order_items, public.appointments, public.measurements, public.customer_insights, public.product_recommendations FROM kct_readonly;
REVOKE SELECT, INSERT, UPDATE, DELETE ON public.products, public.product_variants, public.suppliers, public.collections, public.customers, public.orders, public.order_items, public.appointments, public.measurements, public.customer_insights, public.product_recommendations FROM kct_app;

REVOKE SELECT ON ALL TABLES IN SCHEMA tenant_shared, tenant_kct, analytics FROM kct_readonly;
REVOKE USAGE, SELECT ON ALL SEQUENCES IN SCHEMA tenant_shared, tenant_kct, analytics FROM kct_app;
REVOKE SELECT, INSERT, UPDATE, DELETE
    ON ALL TABLES IN SCHEMA tenant_shared, tenant_kct, analytics FROM kct_app;

REVOKE USAGE ON SCHEMA audit FROM kct_readonly;
REVOKE USAGE ON SCHEMA tenant_shared, tenant_kct, analytics, cache FROM kct_app, kct_readonly;
