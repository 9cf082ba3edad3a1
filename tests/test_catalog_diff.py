"""The diff's sentences and ignore keys, on fingerprints built by hand (no database).

The messages are asserted word for word: they are what a DBA reads in the
report, and a vague or wrong sentence there costs more than a failing test here.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.catalog import (
    IGNORE_DATA,
    IGNORE_DATABASE,
    IGNORE_KEYS,
    IGNORE_OWNERS,
    IGNORE_PRIVILEGES,
    IGNORE_SEQUENCE_VALUES,
    Fingerprint,
    diff,
    same,
)
from harness.catalog.fingerprint import (
    Column,
    Database,
    DefaultPrivilege,
    Index,
    Relation,
    Role,
    Schema,
    Sequence,
    Trigger,
    TypeDef,
    parse_aclitem,
)
from harness.errors import UsageError

OWNER_ACL = ("postgres=arwdDxt/postgres",)


def column(name: str, type_: str = "integer", *, position: int = 1) -> Column:
    return Column(
        name=name, position=position, type=type_, not_null=False, default=None,
        identity=None, generated=None, collation=None, acl=(),
    )  # fmt: skip


def table(
    qualified: str,
    *,
    columns: tuple[Column, ...] = (),
    rows: int | None = 10,
    checksum: str | None = "42",
    acl: tuple[str, ...] = OWNER_ACL,
) -> Relation:
    schema, _, name = qualified.partition(".")
    columns = columns or (column("id"),)
    return Relation(
        schema=schema, name=name, kind="r", owner="postgres", acl=acl, persistence="p",
        row_security=False, force_row_security=False, options=(), inherits=(),
        partition_bound=None, partition_key=None, definition=None, populated=True,
        columns=columns, constraints=(), indexes=(), triggers=(), policies=(),
        rows=rows, checksum=checksum,
    )  # fmt: skip


def sequence(qualified: str, *, last_value: int = 1, is_called: bool = False) -> Sequence:
    schema, _, name = qualified.partition(".")
    return Sequence(
        schema=schema, name=name, type="bigint", start=1, increment=1, minimum=1,
        maximum=2**63 - 1, cache=1, cycle=False, owner="postgres",
        acl=("postgres=rwU/postgres",), owned_by=None, last_value=last_value, is_called=is_called,
    )  # fmt: skip


def fingerprint(
    *,
    tables: tuple[Relation, ...] = (),
    views: tuple[Relation, ...] = (),
    sequences: tuple[Sequence, ...] = (),
    types: tuple[TypeDef, ...] = (),
    settings: dict[str, dict[str, str]] | None = None,
    schemas: tuple[str, ...] = ("public",),
) -> Fingerprint:
    return Fingerprint(
        database=Database("postgres", ("=Tc/postgres",), "UTF8", "C.UTF-8", "C.UTF-8"),
        schemas={s: Schema(s, "postgres", ("postgres=UC/postgres",)) for s in schemas},
        tables={t.qualified: t for t in tables},
        views={v.qualified: v for v in views},
        sequences={s.qualified: s for s in sequences},
        functions={},
        types={t.qualified: t for t in types},
        default_privileges={},
        extensions={},
        settings=settings or {},
        roles={"postgres": SUPERUSER},
    )


def messages(expected: Fingerprint, actual: Fingerprint) -> list[str]:
    return [str(d) for d in diff(expected, actual)]


ORDERS = table("public.orders", rows=5012, checksum="7")
SUPERUSER = Role(
    name="postgres", superuser=True, inherit=True, create_role=True, create_db=True,
    login=True, replication=True, bypass_rls=True, connection_limit=-1, member_of=(),
)  # fmt: skip


def test_equal_fingerprints_have_no_difference() -> None:
    """Two fingerprints built apart from the same facts compare equal; one changed fact does not."""

    def build(rows: int) -> Fingerprint:
        orders = table("public.orders", rows=rows, checksum="7")
        return fingerprint(tables=(orders,), sequences=(sequence("public.orders_id_seq"),))

    expected, actual = build(5012), build(5012)
    assert expected is not actual
    assert diff(expected, actual) == []
    assert same(expected, actual)
    assert messages(expected, build(5013)) == ["`public.orders`: 5,012 rows expected, 5,013 found"]


def test_table_moved_to_another_schema_is_reported_once_as_moved() -> None:
    before = fingerprint(tables=(table("public.suppliers"),))
    after = fingerprint(tables=(table("tenant_shared.suppliers"),))
    assert messages(before, after) == [
        "`public.suppliers`: expected in public, found in tenant_shared"
    ]
    assert diff(before, after)[0].object == "public.suppliers"


def test_moved_table_still_has_its_rows_compared() -> None:
    before = fingerprint(tables=(table("public.suppliers", rows=50),))
    after = fingerprint(tables=(table("tenant_shared.suppliers", rows=49),))
    assert messages(before, after)[1] == "`public.suppliers`: 50 rows expected, 49 found"


def test_missing_and_unexpected_tables() -> None:
    before = fingerprint(tables=(table("public.a"),))
    after = fingerprint(tables=(table("public.b"),))
    assert messages(before, after) == ["table `public.a` missing", "unexpected table `public.b`"]


def test_row_count_and_checksum_sentences() -> None:
    fewer = fingerprint(tables=(replace(ORDERS, rows=5011),))
    assert messages(fingerprint(tables=(ORDERS,)), fewer) == [
        "`public.orders`: 5,012 rows expected, 5,011 found"
    ]
    changed = fingerprint(tables=(replace(ORDERS, checksum="8"),))
    assert messages(fingerprint(tables=(ORDERS,)), changed) == [
        "`public.orders`: same 5,012 rows counted but contents differ (checksum)"
    ]
    one = table("public.one", rows=1)
    assert messages(fingerprint(tables=(one,)), fingerprint(tables=(replace(one, rows=2),))) == [
        "`public.one`: 1 row expected, 2 found"
    ]


def test_data_is_ignored_on_request_and_when_not_read() -> None:
    before = fingerprint(tables=(ORDERS,))
    after = fingerprint(tables=(replace(ORDERS, rows=1, checksum="0"),))
    assert same(before, after, ignore=[IGNORE_DATA])
    assert same(before, fingerprint(tables=(replace(ORDERS, rows=None, checksum=None),)))


def test_column_missing_and_type_changed() -> None:
    before = fingerprint(tables=(table("public.customers", columns=(
        column("id"), column("email", "text", position=2), column("name", "text", position=3),
    )),))  # fmt: skip
    after = fingerprint(tables=(table("public.customers", columns=(
        column("id"), column("name", "character varying(100)", position=2),
    )),))  # fmt: skip
    assert messages(before, after) == [
        "column `public.customers.email` missing",
        "column `public.customers.name`: type text expected, character varying(100) found",
    ]


def test_column_order_is_compared_not_positions() -> None:
    before = fingerprint(tables=(table("public.t", columns=(
        column("a"), column("b", position=2),
    )),))  # fmt: skip
    after = fingerprint(tables=(table("public.t", columns=(
        column("b"), column("a", position=2),
    )),))  # fmt: skip
    assert messages(before, after) == ["`public.t`: column order a, b expected, b, a found"]


def test_privileges_say_which_role_gained_and_lost_what() -> None:
    before = table("tenant_kct.orders", acl=(*OWNER_ACL, "kct_readonly=r/postgres"))
    after = table("tenant_kct.orders", acl=(*OWNER_ACL, "kct_app=arw*/postgres"))
    found = diff(fingerprint(tables=(before,)), fingerprint(tables=(after,)))
    assert [str(d) for d in found] == [
        "`tenant_kct.orders`: privileges differ: kct_app gained SELECT, INSERT, "
        "UPDATE WITH GRANT OPTION; kct_readonly lost SELECT"
    ]
    assert found[0].kind == "privileges"
    assert same(
        fingerprint(tables=(before,)), fingerprint(tables=(after,)), ignore=[IGNORE_PRIVILEGES]
    )


def test_owner_change_and_ignoring_owners() -> None:
    before = fingerprint(tables=(ORDERS,))
    after = fingerprint(tables=(replace(ORDERS, owner="kct_app"),))
    assert messages(before, after) == ["`public.orders`: owner postgres expected, kct_app found"]
    assert same(before, after, ignore=[IGNORE_OWNERS])


def test_database_setting_sentence() -> None:
    after = fingerprint(settings={"database": {"search_path": "public, tenant_shared, tenant_kct"}})
    assert messages(fingerprint(), after) == [
        "database setting search_path: expected <unset>, found 'public, tenant_shared, tenant_kct'"
    ]
    assert same(fingerprint(), after, ignore=[IGNORE_DATABASE])


def test_role_setting_is_not_a_database_setting() -> None:
    after = fingerprint(settings={"role kct_app": {"search_path": "tenant_kct"}})
    assert messages(fingerprint(), after) == [
        "role kct_app setting search_path: expected <unset>, found 'tenant_kct'"
    ]
    assert not same(fingerprint(), after, ignore=[IGNORE_DATABASE])


def test_sequence_reset_and_standby_lead() -> None:
    seq = sequence("public.order_items_id_seq", last_value=1204, is_called=True)
    reset = replace(seq, last_value=1, is_called=False)
    assert messages(fingerprint(sequences=(seq,)), fingerprint(sequences=(reset,))) == [
        "`public.order_items_id_seq`: last value 1,204 expected, 1 found (reset)"
    ]
    standby = replace(seq, last_value=1236)
    assert messages(fingerprint(sequences=(seq,)), fingerprint(sequences=(standby,))) == [
        "`public.order_items_id_seq`: last value 1,204 expected, 1,236 found "
        "(ahead by 32, as a hot standby reads it)"
    ]
    assert same(
        fingerprint(sequences=(seq,)),
        fingerprint(sequences=(reset,)),
        ignore=[IGNORE_SEQUENCE_VALUES],
    )


def test_setval_with_is_called_false_differs() -> None:
    seq = sequence("public.s", last_value=5, is_called=True)
    unused = fingerprint(sequences=(replace(seq, is_called=False),))
    assert messages(fingerprint(sequences=(seq,)), unused) == [
        "`public.s`: last value 5 expected already handed out, found not yet handed out"
    ]


def test_enum_labels_trigger_state_and_invalid_index() -> None:
    mood = TypeDef(
        schema="public", name="mood", kind="e", owner="postgres", acl=(), definition=("sad", "ok")
    )
    happier = fingerprint(types=(replace(mood, definition=("sad", "ok", "happy")),))
    assert messages(fingerprint(types=(mood,)), happier) == [
        "`public.mood`: labels sad, ok expected, sad, ok, happy found"
    ]
    trig = Trigger("audit", "CREATE TRIGGER audit ...", "O")
    idx = Index(name="orders_total_idx", definition="CREATE INDEX orders_total_idx ...", valid=True)
    before = replace(ORDERS, triggers=(trig,), indexes=(idx,))
    after = replace(
        ORDERS, triggers=(replace(trig, enabled="D"),), indexes=(replace(idx, valid=False),)
    )
    assert messages(fingerprint(tables=(before,)), fingerprint(tables=(after,))) == [
        "index `orders_total_idx` on `public.orders`: state valid expected, "
        "INVALID (left by a failed CREATE INDEX CONCURRENTLY) found",
        "trigger `audit` on `public.orders`: state enabled expected, disabled found",
    ]


def test_view_definition_shows_the_changed_lines() -> None:
    view = replace(table("public.v"), kind="v", rows=None, checksum=None,
                   definition=" SELECT a,\n    b\n   FROM public.t;")  # fmt: skip
    changed = replace(view, definition=" SELECT a,\n    c\n   FROM public.t;")
    assert messages(fingerprint(views=(view,)), fingerprint(views=(changed,))) == [
        "`public.v`: definition differs:\n    -    b\n    +    c"
    ]


def test_default_privileges_sentence() -> None:
    entry = DefaultPrivilege("kct_owner", "tenant_kct", "r", ("kct_app=r/kct_owner",))
    before = replace(fingerprint(), default_privileges={"kct_owner/tenant_kct/r": entry})
    assert messages(before, fingerprint()) == [
        "default privileges on tables created by kct_owner in tenant_kct: kct_app lost SELECT"
    ]


def test_unknown_ignore_key_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown ignore key.*sequence_value.*known keys are"):
        diff(fingerprint(), fingerprint(), ignore=["sequence_value"])
    assert "sequence_values" in IGNORE_KEYS


def test_json_round_trip_is_exact() -> None:
    fp = fingerprint(
        tables=(ORDERS, table("tenant_shared.suppliers")),
        sequences=(sequence("public.s", last_value=3, is_called=True),),
        settings={"database": {"search_path": "public"}},
    )
    text = json.dumps(fp.to_json(), sort_keys=True)
    again = Fingerprint.from_json(json.loads(text))
    assert again == fp
    assert json.dumps(again.to_json(), sort_keys=True) == text
    with pytest.raises(UsageError, match="format"):
        Fingerprint.from_json({**fp.to_json(), "format": 0})


def test_lookups_for_invariants() -> None:
    fp = fingerprint(tables=(ORDERS, table("tenant_shared.suppliers", rows=None)))
    assert fp.table_schema("suppliers") == ["tenant_shared"]
    assert fp.table_schema("nothing") == []
    assert fp.row_count("public.orders") == 5012
    assert fp.row_count("tenant_shared.suppliers") is None
    with pytest.raises(KeyError, match=r"public\.suppliers"):
        fp.row_count("public.suppliers")


@pytest.mark.parametrize(
    ("item", "parts"),
    [
        ("kct_app=r/postgres", ("kct_app", "r", "postgres")),
        ("=U/pg_database_owner", ("PUBLIC", "U", "pg_database_owner")),
        ('"we ird"=arw/"a""b"', ("we ird", "arw", 'a"b')),
        ('"x=y/z"=r*/postgres', ("x=y/z", "r*", "postgres")),
    ],
)
def test_parse_aclitem(item: str, parts: tuple[str, str, str]) -> None:
    assert parse_aclitem(item) == parts


_ACLITEMS = st.sampled_from(
    ["postgres=arwdDxt/postgres", "kct_app=r/postgres", "kct_app=rw/postgres", "=r/postgres"]
)


@given(st.frozensets(_ACLITEMS), st.frozensets(_ACLITEMS))
def test_privileges_differ_exactly_when_the_grants_do(
    left: frozenset[str], right: frozenset[str]
) -> None:
    before = fingerprint(tables=(table("public.t", acl=tuple(sorted(left))),))
    after = fingerprint(tables=(table("public.t", acl=tuple(sorted(right))),))
    assert same(before, after) == (left == right)
