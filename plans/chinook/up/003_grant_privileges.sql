-- After the move: ON ALL TABLES IN SCHEMA acts on the tables there at this moment.
GRANT USAGE ON SCHEMA "Music", sales, staff TO chinook_app, chinook_reporting;
GRANT SELECT ON ALL TABLES IN SCHEMA "Music", sales, staff TO chinook_app, chinook_reporting;
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sales TO chinook_app;

-- The compatibility views pass on what the tables give.
GRANT SELECT ON public.artist, public.album, public.track, public.genre, public.media_type,
    public.playlist, public.playlist_track, public.customer, public.invoice,
    public.invoice_line, public.employee TO chinook_app, chinook_reporting;
GRANT INSERT, UPDATE, DELETE ON public.customer, public.invoice, public.invoice_line
    TO chinook_app;
