"""How many instances each architecture admits, from its numbers alone.

The load shows *that* an architecture breaks; this says *which setting* breaks
it. Every instance holds connections for its lifetime: the baseline's lazy pool
one (an instance serves one request at a time), the target's router its writer and
reader pools' ``min_size``, and at least one to the reader (the replica monitor probes
on an idle one of the pool's, or on its own when the pool keeps none). Divided into
each server or pooler limit, that gives the number of instances past which requests
are refused or wait, and the smallest one names the setting that caps the architecture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.load.config import LoadConfig

__all__ = ["Limit", "capped_by", "describe_pooling", "limits"]


@dataclass(frozen=True, kw_only=True)
class Limit:
    architecture: str
    setting: str
    value: int
    per_instance: int
    effect: str

    @property
    def instances(self) -> int:
        """How many instances the setting admits, each holding ``per_instance`` connections."""
        return self.value // self.per_instance

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "instances": self.instances}

    def describe(self) -> str:
        return (
            f"{self.setting} {self.value} admits {self.instances} instances "
            f"at {self.per_instance} connection{'s' if self.per_instance != 1 else ''} each; "
            f"beyond that {self.effect}"
        )


def _session_limit(config: LoadConfig, *, role: str, per_instance: int) -> Limit | None:
    """A session-mode pool caps instances; a transaction-mode one only queues transactions.

    In session pooling each client keeps its server connection for its whole
    session, so ``default_pool_size`` divided by an instance's connections is
    how many instances are served at once. In transaction (and statement)
    pooling a server connection is held only for a transaction: the pool bounds
    transactions running at once, not instances, so it names no instance limit.
    """
    t = config.target
    mode = getattr(t, f"{role}_pool_mode")
    if mode != "session":
        return None
    return Limit(
        architecture="target",
        setting=f"{role} default_pool_size (session pooling)",
        value=getattr(t, f"{role}_default_pool_size"),
        per_instance=per_instance,
        effect=f"each {role} client holds a server connection for its whole session, so new "
        f"ones wait in PgBouncer's queue (for the reserve_pool_size "
        f"{getattr(t, f'{role}_reserve_pool_size')} after reserve_pool_timeout, then for a "
        "session to end): cold starts stall and requests time out",
    )


def limits(config: LoadConfig) -> list[Limit]:
    """Every limit of both architectures, smallest first within each."""
    t = config.target
    writer_each = t.writer_min_size
    reader_each = max(1, t.reader_min_size)
    found = [
        Limit(
            architecture="baseline",
            setting="max_connections",
            value=config.baseline.max_connections,
            per_instance=1,
            effect="the primary refuses new connections (SQLSTATE 53300, too many clients)",
        ),
        Limit(
            architecture="target",
            setting="writer max_client_conn",
            value=t.writer_max_client_conn,
            per_instance=writer_each,
            effect="PgBouncer's writer refuses clients (no more connections allowed)",
        ),
        Limit(
            architecture="target",
            setting="reader max_client_conn",
            value=t.reader_max_client_conn,
            per_instance=reader_each,
            effect="PgBouncer's reader refuses clients (no more connections allowed)",
        ),
    ]
    for role, each in (("writer", writer_each), ("reader", reader_each)):
        limit = _session_limit(config, role=role, per_instance=each)
        if limit is not None:
            found.append(limit)
    return sorted(found, key=lambda limit: (limit.architecture, limit.instances))


def describe_pooling(config: LoadConfig) -> list[str]:
    """What each PgBouncer of the run did, from the settings it ran with."""
    t = config.target
    lines = []
    for role in ("writer", "reader"):
        mode = getattr(t, f"{role}_pool_mode")
        size = getattr(t, f"{role}_default_pool_size")
        reserve = getattr(t, f"{role}_reserve_pool_size")
        clients = getattr(t, f"{role}_max_client_conn")
        if mode == "session":
            how = (
                f"session pooling: each client holds one of {size} (+{reserve} reserve) "
                "server connections while connected"
            )
        else:
            how = (
                f"{mode} pooling: {size} (+{reserve} reserve) server connections serve "
                f"{'transactions' if mode == 'transaction' else 'statements'} as they come"
            )
        lines.append(f"{role}: {how}; max_client_conn {clients}")
    return lines


def capped_by(config: LoadConfig, *, users: int) -> list[Limit]:
    """The target's limits below the load both architectures were given."""
    return [x for x in limits(config) if x.architecture == "target" and x.instances < users]
