"""How many instances each architecture admits, from its numbers alone.

The load shows *that* an architecture breaks; this says *which setting* breaks
it. Every instance holds connections for its lifetime: the baseline's lazy pool
one (an instance serves one request at a time), the target's router its
writer and reader pools' ``min_size`` plus one health-check connection to each
(``harness.routing``'s replica monitor). Divided into each server or pooler
limit, that gives the number of instances past which requests are refused or
wait, and the smallest one names the setting that caps the architecture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.load.config import LoadConfig

__all__ = ["Limit", "capped_by", "limits"]


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


def limits(config: LoadConfig) -> list[Limit]:
    """Every limit of both architectures, smallest first within each."""
    t = config.target
    writer_each = t.writer_min_size + 1
    reader_each = t.reader_min_size + 1
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
        Limit(
            architecture="target",
            setting="reader default_pool_size (session pooling)",
            value=t.reader_default_pool_size,
            per_instance=reader_each,
            effect="each reader client holds a replica connection for its whole session, so "
            f"new ones wait in PgBouncer's queue (for the reserve_pool_size "
            f"{t.reader_reserve_pool_size} after reserve_pool_timeout, then for a session to "
            "end): cold starts stall, reads time out or fall back to the writer",
        ),
    ]
    return sorted(found, key=lambda limit: (limit.architecture, limit.instances))


def capped_by(config: LoadConfig, *, users: int) -> list[Limit]:
    """The target's limits below the load both architectures were given."""
    return [x for x in limits(config) if x.architecture == "target" and x.instances < users]
