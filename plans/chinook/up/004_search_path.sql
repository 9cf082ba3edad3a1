-- New sessions find every table by its bare name; the current database by name, so
-- the same SQL runs on any copy.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path = "$user", "Music", sales, staff, public',
                   current_database());
END
$$;
