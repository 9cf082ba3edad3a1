"""A Locust session of the retailer's traffic, through ``harness.routing``.

Shoppers browse the catalogue and their orders (reads, sent to the replica) and
place orders (writes, sent to the primary), with the application's unqualified
table names, so the same session runs before, during and after a migration that
keeps them resolving. Failures are named by ``classify`` (pool_timeout,
server_refused, pooler_refused, replica_unavailable, query_error), the same kinds
``harness status`` and the routing library count.

Run it in a process of its own (Locust patches the process with gevent)::

    harness up > cluster.env &        # or your own DATABASE_URL / DATABASE_READONLY_URL
    set -a; . ./cluster.env; set +a
    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s

``PGCUTOVER_ROUTING=writer`` sends every query to the writer: the single-database
baseline the plan starts from, to compare a split run against.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from locust import User, between, events, task

from harness.legacy.application import database_from_env
from harness.routing import Database, classify

_db: Database | None = None


def _open(**_: Any) -> None:
    global _db
    if os.environ.get("PGCUTOVER_ROUTING", "split") == "writer":
        _db = database_from_env({"DATABASE_URL": os.environ["DATABASE_URL"]})
    else:
        _db = database_from_env()


def _close(**_: Any) -> None:
    if _db is not None:
        _db.close()


# Locust's EventHook.add_listener carries no annotations.
events.test_start.add_listener(_open)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(_close)  # type: ignore[no-untyped-call]


def _database() -> Database:
    if _db is None:
        raise RuntimeError("the Locust test has not started")
    return _db


class Shopper(User):
    """One customer of the shop: mostly browsing, sometimes buying."""

    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        db = _database()
        self.products = [r[0] for r in db.fetchall("SELECT id FROM products")]
        self.customers = [r[0] for r in db.fetchall("SELECT id FROM customers LIMIT 500")]

    def _measure(self, kind: str, name: str, action: Callable[[], object]) -> None:
        started = time.perf_counter()
        error: Exception | None = None
        try:
            action()
        except Exception as exc:  # every failure is counted, by its kind
            error = RuntimeError(f"{classify(exc).value}: {type(exc).__name__}")
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    @task(6)
    def view_product(self) -> None:
        product = random.choice(self.products)
        self._measure(
            "read",
            "product with variants",
            lambda: _database().fetchall(
                "SELECT p.name, v.sku, v.size, v.price, v.stock FROM products p"
                " JOIN product_variants v ON v.product_id = p.id WHERE p.id = %s",
                (product,),
            ),
        )

    @task(3)
    def view_orders(self) -> None:
        customer = random.choice(self.customers)
        self._measure(
            "read",
            "customer's orders",
            lambda: _database().fetchall(
                "SELECT order_number, status, total FROM order_summaries"
                " WHERE customer_id = %s ORDER BY placed_at DESC LIMIT 20",
                (customer,),
            ),
        )

    @task(1)
    def place_order(self) -> None:
        customer = random.choice(self.customers)

        def place() -> None:
            with _database().writer() as conn:
                row = conn.execute(
                    "INSERT INTO orders (customer_id, subtotal, total, placed_at)"
                    " VALUES (%s, 0, 0, now()) RETURNING id",
                    (customer,),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO order_items (order_id, variant_id, quantity, unit_price)"
                    " SELECT %s, v.id, 1, v.price FROM product_variants v"
                    " ORDER BY random() LIMIT 2",
                    (row[0],),
                )

        self._measure("write", "place order", place)
