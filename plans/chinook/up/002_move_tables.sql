-- Every table to its domain's schema; indexes, keys and constraints move along.
-- SET SCHEMA rewrites no data; the locks last until this step commits.
ALTER TABLE public.artist SET SCHEMA "Music";
ALTER TABLE public.album SET SCHEMA "Music";
ALTER TABLE public.track SET SCHEMA "Music";
ALTER TABLE public.genre SET SCHEMA "Music";
ALTER TABLE public.media_type SET SCHEMA "Music";
ALTER TABLE public.playlist SET SCHEMA "Music";
ALTER TABLE public.playlist_track SET SCHEMA "Music";
ALTER TABLE public.customer SET SCHEMA sales;
ALTER TABLE public.invoice SET SCHEMA sales;
ALTER TABLE public.invoice_line SET SCHEMA sales;
ALTER TABLE public.employee SET SCHEMA staff;

-- Sessions opened before this step keep search_path = public: for them, an
-- automatically updatable view of the same name stays in public.
CREATE VIEW public.artist AS SELECT * FROM "Music".artist;
CREATE VIEW public.album AS SELECT * FROM "Music".album;
CREATE VIEW public.track AS SELECT * FROM "Music".track;
CREATE VIEW public.genre AS SELECT * FROM "Music".genre;
CREATE VIEW public.media_type AS SELECT * FROM "Music".media_type;
CREATE VIEW public.playlist AS SELECT * FROM "Music".playlist;
CREATE VIEW public.playlist_track AS SELECT * FROM "Music".playlist_track;
CREATE VIEW public.customer AS SELECT * FROM sales.customer;
CREATE VIEW public.invoice AS SELECT * FROM sales.invoice;
CREATE VIEW public.invoice_line AS SELECT * FROM sales.invoice_line;
CREATE VIEW public.employee AS SELECT * FROM staff.employee;
