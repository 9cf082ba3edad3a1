-- After the move, not before: GRANT ... ON ALL TABLES IN SCHEMA acts on the tables
-- in the schema at that moment, and a schema grant (the plan's GRANT ALL ON SCHEMA)
-- gives USAGE and CREATE on the schema and nothing on its tables.
GRANT USAGE ON SCHEMA tenant_shared, tenant_kct, analytics, cache TO kct_app, kct_readonly;
GRANT USAGE ON SCHEMA audit TO kct_readonly;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON ALL TABLES IN SCHEMA tenant_shared, tenant_kct, analytics TO kct_app;
-- serial and bigserial defaults call nextval(): INSERT needs USAGE on the sequence.
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA tenant_shared, tenant_kct, analytics TO kct_app;
GRANT SELECT ON ALL TABLES IN SCHEMA tenant_shared, tenant_kct, analytics TO kct_readonly;

-- The compatibility views, and the view the application already used.
GRANT SELECT, INSERT, UPDATE, DELETE ON public.products, public.product_variants, public.suppliers, public.collections, public.customers, public.orders, public.order_items, public.appointments, public.measurements, public.customer_insights, public.product_recommendations TO kct_app;
GRANT SELECT ON public.products, public.product_variants, public.suppliers, public.collections, public.customers, public.orders, public.order_items, public.appointments, public.measurements, public.customer_insights, public.product_recommendations TO kct_readonly;
GRANT SELECT ON public.order_summaries TO kct_app, kct_readonly;

-- Tables and sequences created later (by this role, the migration owner) get the same.
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared, tenant_kct, analytics
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO kct_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared, tenant_kct, analytics
    GRANT USAGE, SELECT ON SEQUENCES TO kct_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA tenant_shared, tenant_kct, analytics, cache, audit
    GRANT SELECT ON TABLES TO kct_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA cache
    GRANT SELECT ON TABLES TO kct_app;
