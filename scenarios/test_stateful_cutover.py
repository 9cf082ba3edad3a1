"""No acknowledged write is lost or duplicated while plans/kct is applied and rolled back.

A cutover does not happen on a quiet database: the shop keeps taking orders
between the steps. Hypothesis interleaves the application's writes (a new
customer, an order with its items, a price change, a deleted measurement) with
the plan's steps, applied one at a time and rolled back one at a time, and
after every rule checks the database against a model of the writes the server
acknowledged. A write the server refused must leave no trace; one it accepted
must be there exactly once, whatever the step.

The application speaks as it always has: unqualified table names. Its
connection is opened before the first step with the database's search_path of
the time, like a pooled connection; the compatibility views keep that path
working. A "reconnect" rule stands for the pool recycling the connection, which
then gets whatever search_path the database has at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from strategies import database_settings, money, pg_text  # scenarios/strategies.py

from harness.cluster import Cluster
from harness.databases import create_database, drop_database
from harness.plan import Plan, load_plan
from harness.runner import Runner, StepOutcome
from harness.testing.fix_cluster import connect
from harness.testing.fix_legacy import fresh_name

pytestmark = pytest.mark.slow

KCT = Path(__file__).resolve().parents[1] / "plans" / "kct"
DOMAIN = "@stateful.invalid"  # no legacy email ends so: the rows this test wrote
# Few names, so that a second customer with the same email is often tried.
EMAIL_NAMES = ("ann", "zoë", "o'brien", "🤵🏽", "tab\tbed", "back\\slash")
NO_SUCH_CUSTOMER = "no-such-customer"
MAX_PRICE = Decimal("99999999.99")  # numeric(10, 2)
MAX_TOTAL = Decimal("9999999999.99")  # numeric(12, 2)
# Refusals the model predicts: a duplicate email, a missing customer, a
# quantity or price against its CHECK, a total or price beyond its numeric.
REFUSED = (psycopg.errors.IntegrityError, psycopg.errors.NumericValueOutOfRange)

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class Order:
    customer_id: str
    total: Decimal
    items: tuple[tuple[str, int, Decimal], ...]  # variant, quantity, unit price


def _ids(conn: Conn, query: str) -> list[str]:
    return [str(r[0]) for r in conn.execute(query).fetchall()]


class CutoverMachine(RuleBasedStateMachine):
    """One run: a fresh copy of the legacy database, writes and steps in any order."""

    def __init__(self, *, primary: str, template: str, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.primary = primary
        self.name = fresh_name("stateful")
        self.dsn = create_database(primary, self.name, template=template)
        self.applied = 0
        self.moves_at = next(s.number for s in plan.up if s.name == "move_tables")
        # What the server acknowledged.
        self.customers: dict[str, tuple[str, str, str | None]] = {}
        self.orders: dict[str, Order] = {}
        self.prices: dict[str, Decimal] = {}
        self.deleted: set[str] = set()
        try:
            self.runner = Runner(plan, self.dsn)
            self.app: Conn = connect(self.dsn)
            # Legacy rows the writes refer to, and what the legacy tables held.
            self.legacy_customers = _ids(self.app, "SELECT id FROM customers ORDER BY id LIMIT 3")
            self.variants = _ids(self.app, "SELECT id FROM product_variants ORDER BY id LIMIT 5")
            self.products = _ids(self.app, "SELECT id FROM products ORDER BY id LIMIT 5")
            self.measurements = _ids(self.app, "SELECT id FROM measurements ORDER BY id LIMIT 8")
            self.legacy_counts = self._counts()
        except BaseException:
            self.teardown()
            raise

    def _counts(self) -> tuple[int, ...]:
        row = self.app.execute(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),"
            " (SELECT count(*) FROM order_items), (SELECT count(*) FROM measurements)"
        ).fetchone()
        assert row is not None
        return tuple(int(str(n)) for n in row)

    @initialize(steps=st.integers(0, 6))  # plans/kct has six steps
    def start_part_way(self, steps: int) -> None:
        """Begin anywhere in the cutover, so that the late steps get their share of writes."""
        for step in self.plan.up[:steps]:
            outcome = self.runner.apply(step)
            assert outcome.applied, "\n".join(map(str, outcome.errors))
            self.applied += 1

    def teardown(self) -> None:
        for opened in (getattr(self, "app", None), getattr(self, "runner", None)):
            if opened is not None:
                opened.close()
        drop_database(self.primary, self.name)

    # -- the plan, one step at a time --------------------------------------------------
    @precondition(lambda self: self.applied < len(self.plan.up))
    @rule()
    def apply_next_step(self) -> None:
        outcome = self.runner.apply(self.plan.up[self.applied])
        assert outcome.applied, "\n".join(map(str, outcome.errors))
        self.applied += 1

    @precondition(lambda self: self.applied > 0)
    @rule()
    def revert_last_step(self) -> None:
        outcome = self.runner.revert(self.plan.up[self.applied - 1])
        assert outcome.applied, "\n".join(map(str, outcome.errors))
        self.applied -= 1

    @precondition(lambda self: self.applied < len(self.plan.up))
    @rule()
    def migrate_the_rest(self) -> None:
        """``harness migrate``: every pending step in order, the writes checked after each."""
        self.runner.migrate(after_step=self._step_applied)

    @precondition(lambda self: self.applied > 0)
    @rule()
    def roll_back_everything(self) -> None:
        """``harness rollback``: the applied steps undone, last first; writes checked after each."""
        self.runner.rollback(after_step=self._step_reverted)

    def _step_applied(self, outcome: StepOutcome) -> None:
        assert outcome.applied, "\n".join(map(str, outcome.errors))
        self.applied += 1
        self.every_acknowledged_write_is_there_once()

    def _step_reverted(self, outcome: StepOutcome) -> None:
        assert outcome.applied, "\n".join(map(str, outcome.errors))
        self.applied -= 1
        self.every_acknowledged_write_is_there_once()

    @rule()
    def reconnect_application(self) -> None:
        """The pool recycles the connection: the new one gets today's database search_path."""
        self.app.close()
        self.app = connect(self.dsn)

    # -- the application's writes ------------------------------------------------------
    @rule(name=st.sampled_from(EMAIL_NAMES), first=pg_text(), last=st.none() | pg_text())
    def insert_customer(self, name: str, first: str, last: str | None) -> None:
        email = name + DOMAIN
        duplicate = any(c[0] == email for c in self.customers.values())
        try:
            row = self.app.execute(
                "INSERT INTO customers (email, first_name, last_name) VALUES (%s, %s, %s)"
                " RETURNING id",
                (email, first, last),
            ).fetchone()
        except psycopg.errors.UniqueViolation:
            assert duplicate, f"{email!r} refused as a duplicate, but no customer has it"
            return
        assert not duplicate, f"a second customer with email {email!r} was accepted"
        assert row is not None
        self.customers[str(row[0])] = (email, first, last)

    @rule(
        data=st.data(),
        items=st.lists(
            st.tuples(
                st.integers(0, 4), st.integers(-1, 1000), money(precision=10, minimum=Decimal(0))
            ),
            max_size=3,
        ),
    )
    def insert_order(self, data: st.DataObject, items: list[tuple[int, int, Decimal]]) -> None:
        customer = data.draw(
            st.sampled_from([*self.customers, *self.legacy_customers, NO_SUCH_CUSTOMER]),
            label="customer",
        )
        lines = tuple((self.variants[v], q, p) for v, q, p in items)
        total = sum((q * p for _, q, p in lines), Decimal(0))
        refused = customer == NO_SUCH_CUSTOMER or any(q <= 0 for _, q, _ in lines)
        refused = refused or total > MAX_TOTAL
        error: psycopg.Error | None = None
        order_id = ""
        try:
            with self.app.transaction():
                row = self.app.execute(
                    "INSERT INTO orders (customer_id, subtotal, total, placed_at)"
                    " VALUES (%s, %s, %s, now()) RETURNING id",
                    (customer, total, total),
                ).fetchone()
                assert row is not None
                order_id = str(row[0])
                for variant, quantity, price in lines:
                    self.app.execute(
                        "INSERT INTO order_items (order_id, variant_id, quantity, unit_price)"
                        " VALUES (%s, %s, %s, %s)",
                        (order_id, variant, quantity, price),
                    )
        except REFUSED as exc:
            error = exc
        assert (error is not None) == refused, (
            f"order refused for no reason the model knows: {error}"
            if error
            else "an order the constraints forbid was accepted"
        )
        if error is not None:
            return
        self.orders[order_id] = Order(customer, total, lines)

    @rule(
        data=st.data(),
        price=money(precision=10, minimum=Decimal(0))
        | st.sampled_from([Decimal("-0.01"), MAX_PRICE + Decimal("0.01")]),
    )
    def update_price(self, data: st.DataObject, price: Decimal) -> None:
        product = data.draw(st.sampled_from(self.products), label="product")
        refused = not 0 <= price <= MAX_PRICE
        error: psycopg.Error | None = None
        try:
            cur = self.app.execute(
                "UPDATE products SET base_price = %s WHERE id = %s", (price, product)
            )
        except REFUSED as exc:
            error = exc
        assert (error is not None) == refused, (
            f"price {price} refused for no reason the model knows: {error}"
            if error
            else f"price {price} accepted against the column's CHECK or type"
        )
        if error is not None:
            return
        assert cur.rowcount == 1
        self.prices[product] = price

    @rule(data=st.data())
    def delete_measurement(self, data: st.DataObject) -> None:
        measurement = data.draw(st.sampled_from(self.measurements), label="measurement")
        cur = self.app.execute("DELETE FROM measurements WHERE id = %s", (measurement,))
        assert cur.rowcount == (0 if measurement in self.deleted else 1)
        self.deleted.add(measurement)

    # -- what must hold after every rule -----------------------------------------------
    @invariant()
    def steps_are_where_the_model_says(self) -> None:
        """The ledger and the catalog agree with the steps applied: the steps really ran."""
        applied = [a.step for a in self.runner.applied()]
        assert applied == [s.number for s in self.plan.up[: self.applied]]
        row = self.runner.conn.execute("SELECT to_regclass('tenant_kct.customers')").fetchone()
        assert (row is not None and row[0] is not None) == (self.applied >= self.moves_at)

    @invariant()
    def every_acknowledged_write_is_there_once(self) -> None:
        base_customers, base_orders, base_items, base_measurements = self.legacy_counts
        assert self._counts() == (
            base_customers + len(self.customers),
            base_orders + len(self.orders),
            base_items + sum(len(o.items) for o in self.orders.values()),
            base_measurements - len(self.deleted),
        )
        customers = self.app.execute(
            "SELECT id, email, first_name, last_name FROM customers WHERE right(email, %s) = %s",
            (len(DOMAIN), DOMAIN),
        ).fetchall()
        # Compared sorted in Python: the server's order depends on its collation.
        assert sorted(customers) == sorted((k, *v) for k, v in self.customers.items())

        orders = self.app.execute(
            "SELECT id, customer_id, total FROM orders WHERE id = ANY(%s)",
            (list(self.orders),),
        ).fetchall()
        assert sorted(orders) == sorted((k, o.customer_id, o.total) for k, o in self.orders.items())
        items = self.app.execute(
            "SELECT order_id, variant_id, quantity, unit_price FROM order_items"
            " WHERE order_id = ANY(%s)",
            (list(self.orders),),
        ).fetchall()
        assert sorted(items) == sorted((k, *i) for k, o in self.orders.items() for i in o.items)

        prices = self.app.execute(
            "SELECT id, base_price FROM products WHERE id = ANY(%s)",
            (list(self.prices),),
        ).fetchall()
        assert sorted(prices) == sorted(self.prices.items())
        gone = self.app.execute(
            "SELECT id FROM measurements WHERE id = ANY(%s)", (list(self.deleted),)
        ).fetchall()
        assert gone == []


@pytest.fixture(scope="module")
def kct_plan() -> Plan:
    return load_plan(KCT)


def test_no_acknowledged_write_is_lost_or_duplicated(
    cluster: Cluster, legacy_template_name: str, kct_plan: Plan
) -> None:
    """Writes interleaved with every step and rollback of plans/kct survive exactly once."""

    # run_state_machine_as_test takes a class; this one closes over the fixtures.
    class Machine(CutoverMachine):
        def __init__(self) -> None:
            super().__init__(
                primary=cluster.endpoints.primary, template=legacy_template_name, plan=kct_plan
            )

    run_state_machine_as_test(
        Machine, settings=database_settings(max_examples=10, stateful_step_count=25)
    )
