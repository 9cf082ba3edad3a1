"""The catalog queries behind a fingerprint: one per kind of object.

Kept apart from the model and its assembly so each can be read whole.
"""

from __future__ import annotations

from psycopg import sql

# Catalog queries: one per kind of object. {ns} keeps user schemas only; the
# NOT EXISTS (... deptype = 'e') clauses leave out what an extension created,
# which the extension's own row (name, version) already stands for.
NS = sql.SQL(
    "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
    " AND n.nspname <> ALL(%(excluded)s::text[])"
)


def _acl(column: str, kind: str, owner: str) -> sql.Composed:
    """Sorted aclitem text; a NULL ACL stands for the default, so spell the default out."""
    return sql.SQL(
        'ARRAY(SELECT x::text COLLATE "C"'
        " FROM unnest(coalesce({}, acldefault({}, {}))) x ORDER BY 1)"
    ).format(sql.SQL(column), sql.Literal(kind), sql.SQL(owner))


DATABASE = sql.SQL("""
SELECT pg_get_userbyid(d.datdba)::text,
  {acl},
  pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text,
  d.datconnlimit, d.datallowconn, pg_is_in_recovery()
FROM pg_database d WHERE d.datname = current_database()""").format(
    acl=_acl("d.datacl", "d", "d.datdba")
)
SCHEMAS = sql.SQL("""
SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text,
  {acl}
FROM pg_namespace n WHERE {ns} ORDER BY 1""").format(ns=NS, acl=_acl("n.nspacl", "n", "n.nspowner"))
RELATIONS = sql.SQL("""
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, pg_get_userbyid(c.relowner)::text,
  {acl},
  c.relpersistence::text, c.relrowsecurity, c.relforcerowsecurity,
  coalesce(c.reloptions, ARRAY[]::text[]),
  ARRAY(SELECT i.inhparent::regclass::text COLLATE "C" FROM pg_inherits i
        WHERE i.inhrelid = c.oid ORDER BY 1),
  pg_get_expr(c.relpartbound, c.oid), CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
  CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, c.relispopulated
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {ns} AND NOT EXISTS (SELECT FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2, 3""").format(ns=NS, acl=_acl("c.relacl", "r", "c.relowner"))
# The position is the rank among live columns, not attnum: a restored copy
# has no dropped columns, so its attnums close up. "native" is checksum.py's test.
COLUMNS = sql.SQL("""
SELECT a.attrelid, a.attname::text,
  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)::int,
  format_type(a.atttypid, a.atttypmod), a.attnotnull,
  CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
  CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
  CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
  CASE WHEN a.attcollation <> t.typcollation
    THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
  ARRAY(SELECT x::text COLLATE "C" FROM unnest(a.attacl) x ORDER BY 1),
  et.typnamespace = 'pg_catalog'::regnamespace AND et.typname::text = ANY(%(native)s)
    AND (a.attcollation = 0 OR co.collisdeterministic)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type et ON et.oid = CASE WHEN t.typelem <> 0 AND EXISTS (SELECT FROM pg_type e
  WHERE e.oid = t.typelem AND e.typarray = t.oid) THEN t.typelem ELSE t.oid END
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {ns}
ORDER BY a.attrelid, a.attnum""").format(ns=NS)
CONSTRAINTS = sql.SQL("""
SELECT k.conrelid, k.conname::text, k.contype::text, pg_get_constraintdef(k.oid), k.convalidated
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {ns}""").format(ns=NS)
INDEXES = sql.SQL("""
SELECT i.indrelid, ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisvalid
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {ns}""").format(ns=NS)
TRIGGERS = sql.SQL("""
SELECT g.tgrelid, g.tgname::text, pg_get_triggerdef(g.oid), g.tgenabled::text
FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal AND {ns}""").format(ns=NS)
# A view's own _RETURN rule is its definition; any other rule rewrites what a statement does.
RULES = sql.SQL("""
SELECT r.ev_class, r.rulename::text, pg_get_ruledef(r.oid), r.ev_enabled::text
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE r.rulename <> '_RETURN' AND {ns}""").format(ns=NS)
POLICIES = sql.SQL("""
SELECT p.polrelid, p.polname::text, p.polcmd::text, p.polpermissive,
  ARRAY(SELECT (CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END) COLLATE "C"
        FROM unnest(p.polroles) r ORDER BY 1),
  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {ns}""").format(ns=NS)
SEQUENCES = sql.SQL("""
SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
  s.seqmin, s.seqmax, s.seqcache, s.seqcycle, pg_get_userbyid(c.relowner)::text,
  {acl},
  (SELECT dn.nspname || '.' || dc.relname || '.' || a.attname FROM pg_depend d
   JOIN pg_class dc ON dc.oid = d.refobjid JOIN pg_namespace dn ON dn.oid = dc.relnamespace
   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
     AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0),
  c.relpersistence::text
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {ns} AND NOT EXISTS (SELECT FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2""").format(ns=NS, acl=_acl("c.relacl", "s", "c.relowner"))
# pg_get_functiondef refuses aggregates; describe those from pg_aggregate. Range
# constructors depend on their type (deptype 'i') and come and go with it.
FUNCTIONS = sql.SQL("""
SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
  p.prokind::text, l.lanname::text,
  CASE WHEN p.prokind = 'a' THEN (SELECT concat_ws(' ', 'AGGREGATE RETURNS',
      pg_get_function_result(p.oid), 'SFUNC', g.aggtransfn::text,
      'STYPE', format_type(g.aggtranstype, NULL),
      'FINALFUNC ' || nullif(g.aggfinalfn::oid, 0)::regproc::text,
      'COMBINEFUNC ' || nullif(g.aggcombinefn::oid, 0)::regproc::text,
      'INITCOND ' || g.agginitval) FROM pg_aggregate g WHERE g.aggfnoid = p.oid)
    ELSE pg_get_functiondef(p.oid) END,
  pg_get_userbyid(p.proowner)::text,
  {acl},
  coalesce(p.proconfig, ARRAY[]::text[])
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE {ns} AND NOT EXISTS (SELECT FROM pg_depend d
  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
ORDER BY 1, 2, 3""").format(ns=NS, acl=_acl("p.proacl", "f", "p.proowner"))
# Array types and the row types of tables come with their owners; leave them out.
TYPES = sql.SQL("""
SELECT n.nspname::text, t.typname::text, t.typtype::text, pg_get_userbyid(t.typowner)::text,
  {acl},
  CASE t.typtype
  WHEN 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
    WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
  WHEN 'c' THEN ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum)
  WHEN 'r' THEN ARRAY(SELECT x FROM pg_range r, LATERAL (VALUES
    ('SUBTYPE ' || format_type(r.rngsubtype, NULL)),
    ('MULTIRANGE ' || format_type(r.rngmultitypid, NULL))) v(x) WHERE r.rngtypid = t.oid)
  WHEN 'd' THEN ARRAY['BASE ' || format_type(t.typbasetype, t.typtypmod)]
    || ARRAY(SELECT 'NOT NULL' WHERE t.typnotnull)
    || ARRAY(SELECT 'DEFAULT ' || pg_get_expr(t.typdefaultbin, 0) WHERE t.typdefaultbin IS NOT NULL)
    || ARRAY(SELECT 'CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
      FROM pg_constraint k WHERE k.contypid = t.oid ORDER BY k.conname)
  ELSE ARRAY['INPUT ' || t.typinput::text, 'OUTPUT ' || t.typoutput::text] END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {ns} AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
  AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT FROM pg_type a WHERE a.typarray = t.oid)
  AND NOT EXISTS (SELECT FROM pg_depend d
    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
ORDER BY 1, 2""").format(ns=NS, acl=_acl("t.typacl", "T", "t.typowner"))
DEFAULT_ACLS = sql.SQL("""
SELECT pg_get_userbyid(d.defaclrole)::text, n.nspname::text, d.defaclobjtype::text,
  ARRAY(SELECT x::text COLLATE "C" FROM unnest(d.defaclacl) x ORDER BY 1)
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
WHERE d.defaclnamespace = 0 OR ({ns})""").format(ns=NS)
# Logical replication's publications of this database, with the tables each publishes in
# effect (FOR ALL TABLES and FOR TABLES IN SCHEMA resolved to today's tables).
PUBLICATIONS = sql.SQL("""
SELECT p.pubname::text, pg_get_userbyid(p.pubowner)::text, p.puballtables,
  concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END,
    CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END),
  p.pubviaroot,
  ARRAY(SELECT n.nspname::text COLLATE "C" FROM pg_publication_namespace pn
        JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = p.oid ORDER BY 1),
  ARRAY(SELECT (t.schemaname || '.' || t.tablename)::text COLLATE "C"
        FROM pg_publication_tables t WHERE t.pubname = p.pubname ORDER BY 1)
FROM pg_publication p ORDER BY 1""")
EXTENSIONS = sql.SQL("""
SELECT e.extname::text, e.extversion, n.nspname::text, pg_get_userbyid(e.extowner)::text
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE n.nspname <> ALL(%(excluded)s::text[]) ORDER BY 1""")
# Rows for this database, and for every database (setdatabase = 0); the
# database's name is left out of the scope so a restored copy compares equal.
SETTINGS = sql.SQL("""
SELECT CASE WHEN s.setrole = 0 THEN 'database'
  ELSE 'role ' || pg_get_userbyid(s.setrole)
    || CASE WHEN s.setdatabase <> 0 THEN ' in database' ELSE '' END END,
  CASE WHEN s.setrole <> 0 THEN pg_get_userbyid(s.setrole)::text END, s.setconfig
FROM pg_db_role_setting s
WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))""")
# Every role but the built-in pg_* ones: roles are cluster-wide, and one a migration
# creates (or a rollback leaves behind) owns nothing in the database to be seen by.
ROLES = sql.SQL("""
SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
  r.rolreplication, r.rolbypassrls, r.rolconnlimit,
  ARRAY(SELECT g.rolname::text COLLATE "C" FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1),
  -- 'infinity' is how ALTER ROLE says never again, which a new role's NULL also means
  nullif(r.rolvaliduntil, 'infinity')::text
FROM pg_roles r WHERE r.rolname = ANY(%(roles)s::text[]) OR r.rolname !~ '^pg_'
ORDER BY 1""")
