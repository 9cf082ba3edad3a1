"""The router on an application that is not the retailer's: a clinic booking two tenants.

Its own database (none of the retailer's tables, schemas, roles or names): a
shared ``catalog`` of services and one schema per clinic for its patients and
visits. The application configures everything the library needs: its pool
names, which model schema is the per-tenant one, where the shared one is.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import ForeignKey, Integer, Text, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from harness.cluster import Cluster, Endpoints
from harness.databases import create_database, drop_database
from harness.errors import UsageError
from harness.routing import READER_POOL, WRITER_POOL, Database, InvalidIdentifier, ReplicaPolicy
from harness.routing.orm import OrmRouting
from harness.testing.fix_cluster import connect

TENANTS = ("clinic_north", "clinic_south")
SCHEMA = """
CREATE SCHEMA catalog;
CREATE TABLE catalog.services (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO catalog.services VALUES (1, 'checkup'), (2, 'x-ray'), (3, 'vaccination');
"""
TENANT_SCHEMA = """
CREATE SCHEMA {tenant};
CREATE TABLE {tenant}.patients (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE {tenant}.visits (
    id serial PRIMARY KEY,
    patient_id int NOT NULL REFERENCES {tenant}.patients,
    service_id int NOT NULL REFERENCES catalog.services
);
"""
# PgBouncer passes each client's application_name on to the server connection it lends.
APPLICATION_NAME = func.current_setting("application_name")
# Probe often, and wait long enough for replay on a loaded machine.
POLICY = ReplicaPolicy(check_interval=0.05, read_your_writes_wait=10.0)
_names = itertools.count(1)


class Base(DeclarativeBase):
    pass


# The models name roles, not places: "clinic" is whichever tenant a session serves.
class Service(Base):
    __tablename__ = "services"
    __table_args__ = {"schema": "shared"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = {"schema": "clinic"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Visit(Base):
    __tablename__ = "visits"
    __table_args__ = {"schema": "clinic"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("clinic.patients.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("shared.services.id"))


@dataclass(frozen=True)
class Clinics:
    endpoints: Endpoints
    db: Database


@pytest.fixture
def clinics(cluster: Cluster) -> Iterator[Clinics]:
    """A fresh clinic database on primary and replica, and the clinic app's router."""
    name = f"clinics_{os.getpid()}_{next(_names)}"
    dsn = create_database(cluster.endpoints.primary, name)
    try:
        with connect(dsn) as admin:
            admin.execute(SCHEMA)
            for tenant in TENANTS:
                admin.execute(TENANT_SCHEMA.format(tenant=tenant))
        cluster.wait_for_replica()
        eps = cluster.endpoints.for_database(name)
        with Database(
            eps.writer,
            eps.reader,
            replica=POLICY,
            writer_pool=replace(WRITER_POOL, application_name="clinic_writer", min_size=1),
            reader_pool=replace(READER_POOL, application_name="clinic_reader", min_size=1),
            health_application_name="clinic_health",
        ) as db:
            yield Clinics(endpoints=eps, db=db)
    finally:
        drop_database(cluster.endpoints.primary, name)


def test_each_tenant_is_a_schema_and_reads_its_own_writes_from_the_replica(
    clinics: Clinics,
) -> None:
    orm = OrmRouting(clinics.db, schemas={"shared": "catalog"}, schema_per_tenant="clinic")
    try:
        with orm.session(tenant="clinic_north") as session:
            session.add(Patient(name="Ada"))
            session.commit()
            assert session.read_token.lsn is not None
            found = session.execute(
                select(func.pg_is_in_recovery(), func.count()).select_from(Patient)
            ).one()
            assert tuple(found) == (True, 1)  # waited for replay, then read on the replica
            assert session.scalar(select(func.count()).select_from(Service)) == 3  # shared
        with orm.session(tenant="clinic_south") as session:
            where = session.execute(select(func.pg_is_in_recovery(), APPLICATION_NAME)).one()
            assert tuple(where) == (True, "clinic_reader")
            assert session.scalar(select(func.count()).select_from(Patient)) == 0
            patient = Patient(name="Grace")
            session.add(patient)
            session.flush()
            session.add(Visit(patient_id=patient.id, service_id=2))
            session.commit()
        with connect(clinics.endpoints.primary) as admin:
            placed = admin.execute(
                "SELECT (SELECT count(*) FROM clinic_north.patients),"
                " (SELECT count(*) FROM clinic_south.patients),"
                " (SELECT count(*) FROM clinic_south.visits WHERE service_id = 2)"
            ).fetchone()
        assert placed == (1, 1, 1)
    finally:
        orm.dispose()


def test_a_tenant_session_needs_the_schema_per_tenant_and_a_valid_name(clinics: Clinics) -> None:
    plain = OrmRouting(clinics.db, schemas={"shared": "catalog"})
    with pytest.raises(UsageError, match=r"pass OrmRouting\(db, schema_per_tenant=\.\.\.\)"):
        plain.session(tenant="clinic_north")
    orm = OrmRouting(clinics.db, schemas={"shared": "catalog"}, schema_per_tenant="clinic")
    with pytest.raises(InvalidIdentifier, match=r"^tenant schema name 'clinic_north; RESET ALL' "):
        orm.session(tenant="clinic_north; RESET ALL")
    with pytest.raises(InvalidIdentifier, match=r"^catalog schema name 'Catalog' "):
        OrmRouting(clinics.db, schemas={"catalog": "Catalog"})
    plain.dispose()
    orm.dispose()


def test_a_search_path_per_tenant_holds_for_one_transaction_only(clinics: Clinics) -> None:
    db = clinics.db
    with db.unit_of_work() as unit:
        for tenant in TENANTS:
            with unit.writer(search_path=[tenant, "catalog"]) as conn:
                conn.execute("INSERT INTO patients (name) VALUES (%s)", (f"of {tenant}",))
        for tenant in TENANTS:
            with unit.reader(search_path=[tenant, "catalog"]) as conn:
                rows = conn.execute(
                    "SELECT pg_is_in_recovery(), name, (SELECT count(*) FROM services)"
                    " FROM patients"
                ).fetchall()
            assert rows == [(True, f"of {tenant}", 3)]
    # SET LOCAL ended with each transaction: the server connections PgBouncer lends
    # next (transaction pooling) are back on the database's own search_path.
    for _ in range(3):
        with db.writer() as conn:
            row = conn.execute(
                "SELECT current_setting('search_path'), current_setting('application_name')"
            ).fetchone()
        assert row == ('"$user", public', "clinic_writer")
