-- RESTRICT (the default): stop rather than drop anything still inside.
DROP SCHEMA staff;
DROP SCHEMA sales;
DROP SCHEMA "Music";
