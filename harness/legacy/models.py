"""The retailer's tables as SQLAlchemy 2 models, in the schemas the plan moves them to.

Each model names its *target* schema (``tenant_shared``, ``tenant_kct``,
``analytics``); a session's ``schema_translate_map`` says where those really
are: ``public`` before the migration, another tenant's schema for another
tenant. Columns mirror ``harness/legacy/schema.sql``; defaults the server
computes (``cuid()``, ``now()``, serials, identities, the ``updated_at``
trigger) are marked as server-generated so that inserts read them back with
``RETURNING`` instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    FetchedValue,
    ForeignKey,
    Integer,
    Numeric,
    Text,
)
from sqlalchemy.dialects.postgresql import ENUM, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from harness.legacy.application import ANALYTICS, TENANT_KCT, TENANT_SHARED
from harness.routing import Database
from harness.routing.orm import OrmRouting

__all__ = [
    "Appointment",
    "Base",
    "Collection",
    "Customer",
    "CustomerInsight",
    "Measurement",
    "Order",
    "OrderItem",
    "Product",
    "ProductRecommendation",
    "ProductVariant",
    "Supplier",
    "orm_routing",
]

# The enum types stay in public through the migration (schema.sql); naming the
# schema keeps a translate map for the tables from moving them too.
ORDER_STATUS = ENUM(
    "pending", "paid", "fulfilled", "shipped", "delivered", "cancelled", "refunded",
    name="order_status", schema="public", create_type=False,
)  # fmt: skip
APPOINTMENT_KIND = ENUM(
    "consultation", "fitting", "alteration", "wedding_party", "pickup",
    name="appointment_kind", schema="public", create_type=False,
)  # fmt: skip


class Base(DeclarativeBase):
    pass


def orm_routing(db: Database, *, schemas: Mapping[str, str] | None = None) -> OrmRouting:
    """The router's SQLAlchemy side for these models; ``session(tenant=...)`` picks a tenant.

    ``schemas`` says where the models' schemas really are (``LEGACY_LAYOUT``
    before the migration); by default, where the plan moves them.
    """
    return OrmRouting(db, schemas=schemas, schema_per_tenant=TENANT_KCT)


def _cuid() -> Mapped[str]:
    """A text primary key the server fills with ``cuid()`` when the client gives none."""
    return mapped_column(Text, primary_key=True, server_default=FetchedValue())


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=FetchedValue())


def _updated() -> Mapped[datetime]:
    # set by the set_updated_at() trigger on every UPDATE
    return mapped_column(
        DateTime(timezone=True), server_default=FetchedValue(), server_onupdate=FetchedValue()
    )


# -- tenant_shared: the catalog every tenant sells from ----------------------------------
class Supplier(Base):
    __tablename__ = "suppliers"
    __table_args__ = {"schema": TENANT_SHARED}

    id: Mapped[str] = _cuid()
    name: Mapped[str] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(CHAR(2))
    contact_email: Mapped[str | None] = mapped_column(Text)
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = {"schema": TENANT_SHARED}

    id: Mapped[str] = _cuid()
    name: Mapped[str] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    season: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=FetchedValue())
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Product(Base):
    __tablename__ = "products"
    __table_args__ = {"schema": TENANT_SHARED}

    id: Mapped[str] = _cuid()
    supplier_id: Mapped[str | None] = mapped_column(ForeignKey(f"{TENANT_SHARED}.suppliers.id"))
    collection_id: Mapped[str | None] = mapped_column(ForeignKey(f"{TENANT_SHARED}.collections.id"))
    name: Mapped[str] = mapped_column(Text)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    category: Mapped[str] = mapped_column(Text)
    fabric: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    base_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=FetchedValue())
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    supplier: Mapped[Supplier | None] = relationship()
    collection: Mapped[Collection | None] = relationship()
    variants: Mapped[list[ProductVariant]] = relationship(back_populates="product")


class ProductVariant(Base):
    __tablename__ = "product_variants"
    __table_args__ = {"schema": TENANT_SHARED}

    id: Mapped[str] = _cuid()
    product_id: Mapped[str] = mapped_column(ForeignKey(f"{TENANT_SHARED}.products.id"))
    sku: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[str] = mapped_column(Text)
    fit: Mapped[str | None] = mapped_column(Text)
    color: Mapped[str] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    stock: Mapped[int] = mapped_column(Integer, server_default=FetchedValue())
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    product: Mapped[Product] = relationship(back_populates="variants")


# -- tenant_kct: one tenant's customers, orders and fittings --------------------------------
class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = {"schema": TENANT_KCT}

    id: Mapped[str] = _cuid()
    email: Mapped[str] = mapped_column(Text, unique=True)
    first_name: Mapped[str] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean, server_default=FetchedValue())
    loyalty_points: Mapped[int] = mapped_column(Integer, server_default=FetchedValue())
    preferred_store: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = {"schema": TENANT_KCT}

    id: Mapped[str] = _cuid()
    order_number: Mapped[int] = mapped_column(Integer, server_default=FetchedValue())
    customer_id: Mapped[str] = mapped_column(ForeignKey(f"{TENANT_KCT}.customers.id"))
    status: Mapped[str] = mapped_column(ORDER_STATUS, server_default=FetchedValue())
    currency: Mapped[str] = mapped_column(CHAR(3), server_default=FetchedValue())
    subtotal: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    tax: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=FetchedValue())
    shipping: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=FetchedValue())
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    notes: Mapped[str | None] = mapped_column(Text)
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(back_populates="order")


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = {"schema": TENANT_KCT}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey(f"{TENANT_KCT}.orders.id"))
    # The variant lives in the shared catalog: a cross-schema foreign key.
    variant_id: Mapped[str] = mapped_column(ForeignKey(f"{TENANT_SHARED}.product_variants.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    discount: Mapped[Decimal] = mapped_column(Numeric(10, 2), server_default=FetchedValue())

    order: Mapped[Order] = relationship(back_populates="items")


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = {"schema": TENANT_KCT}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey(f"{TENANT_KCT}.customers.id"))
    kind: Mapped[str] = mapped_column(APPOINTMENT_KIND)
    status: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_minutes: Mapped[int] = mapped_column(Integer, server_default=FetchedValue())
    stylist: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Measurement(Base):
    __tablename__ = "measurements"
    __table_args__ = {"schema": TENANT_KCT}

    id: Mapped[str] = _cuid()
    customer_id: Mapped[str] = mapped_column(ForeignKey(f"{TENANT_KCT}.customers.id"))
    chest_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    waist_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    hip_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    inseam_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    sleeve_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    neck_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    jacket_size: Mapped[str | None] = mapped_column(Text)
    taken_by: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# -- analytics: derived tables, rebuilt from the others ----------------------------------------
# customer_id and product_id point into tenant tables (the legacy database has
# foreign keys there); analytics is shared by every tenant, so the models do not
# tie it to one tenant's customers.
class CustomerInsight(Base):
    __tablename__ = "customer_insights"
    __table_args__ = {"schema": ANALYTICS}

    id: Mapped[str] = _cuid()
    customer_id: Mapped[str] = mapped_column(Text, unique=True)
    lifetime_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), server_default=FetchedValue())
    order_count: Mapped[int] = mapped_column(Integer, server_default=FetchedValue())
    average_order_value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    segment: Mapped[str] = mapped_column(Text)
    churn_risk: Mapped[float | None] = mapped_column(Double)
    computed_at: Mapped[datetime] = _created()


class ProductRecommendation(Base):
    __tablename__ = "product_recommendations"
    __table_args__ = {"schema": ANALYTICS}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[str] = mapped_column(Text)
    product_id: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
