REVOKE INSERT, UPDATE, DELETE ON public.customer, public.invoice, public.invoice_line
    FROM chinook_app;
REVOKE SELECT ON public.artist, public.album, public.track, public.genre, public.media_type,
    public.playlist, public.playlist_track, public.customer, public.invoice,
    public.invoice_line, public.employee FROM chinook_app, chinook_reporting;
REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sales FROM chinook_app;
REVOKE SELECT ON ALL TABLES IN SCHEMA "Music", sales, staff FROM chinook_app, chinook_reporting;
REVOKE USAGE ON SCHEMA "Music", sales, staff FROM chinook_app, chinook_reporting;
