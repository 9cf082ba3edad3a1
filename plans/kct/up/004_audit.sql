-- "audit: (new) audit_log, change_history": one row per change in audit_log, and
-- what changed in change_history.
CREATE TABLE audit.audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL,
    table_schema text        NOT NULL,
    table_name   text        NOT NULL,
    operation    text        NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    row_id       text
);
CREATE INDEX audit_log_table_row_idx ON audit.audit_log (table_schema, table_name, row_id);

CREATE TABLE audit.change_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audit_id        bigint NOT NULL REFERENCES audit.audit_log (id) ON DELETE CASCADE,
    old_row         jsonb,
    new_row         jsonb,
    changed_columns text[] NOT NULL
);
CREATE INDEX change_history_audit_id_idx ON audit.change_history (audit_id);

-- SECURITY DEFINER: the application writes the audit trail through this trigger
-- without any privilege on the audit tables itself. A definer function must pin
-- its search_path, or a caller could shadow the names it uses.
CREATE FUNCTION audit.record_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entry   bigint;
    old_row jsonb;
    new_row jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    INSERT INTO audit.audit_log (actor, table_schema, table_name, operation, row_id)
    VALUES (session_user, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP,
            coalesce(new_row, old_row) ->> 'id')
    RETURNING id INTO entry;
    INSERT INTO audit.change_history (audit_id, old_row, new_row, changed_columns)
    VALUES (entry, old_row, new_row,
            ARRAY(SELECT key
                    FROM jsonb_each(coalesce(new_row, '{}')) n
                    FULL JOIN jsonb_each(coalesce(old_row, '{}')) o USING (key)
                   WHERE n.value IS DISTINCT FROM o.value
                   ORDER BY key));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION audit.record_change() FROM PUBLIC;

-- In the order the shop's transactions lock these tables, so a trigger being added
-- never waits on one transaction while holding a table that transaction needs next.
CREATE TRIGGER appointments_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_kct.appointments
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_kct.orders
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER suppliers_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_shared.suppliers
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER customers_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_kct.customers
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER order_items_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_kct.order_items
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER products_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_shared.products
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER product_variants_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_shared.product_variants
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER collections_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_shared.collections
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER measurements_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_kct.measurements
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();

GRANT SELECT ON audit.audit_log, audit.change_history TO kct_readonly;
