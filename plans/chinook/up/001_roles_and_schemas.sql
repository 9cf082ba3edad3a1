-- Roles are cluster-wide: create them only where they are missing, never drop them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chinook_app') THEN
        CREATE ROLE chinook_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chinook_reporting') THEN
        CREATE ROLE chinook_reporting LOGIN;
    END IF;
END
$$;

CREATE SCHEMA "Music";
CREATE SCHEMA sales;
CREATE SCHEMA staff;
