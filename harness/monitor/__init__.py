"""Watching a primary, its replica and PgBouncer: the plan's ``DatabaseMonitor``, ``status``.

``collect_status`` gathers health, connections by application_name and state,
slow queries, per-schema sizes, replication lag and PgBouncer's pools into a
``Status``; ``harness.monitor.command.add_parser`` registers ``harness status``.
It connects through ``harness.connections``, as the router does, and depends
on no other part of the engine.
"""

from __future__ import annotations

from harness.monitor.collect import ServerStatus, Status, Unreachable, collect_status

__all__ = ["ServerStatus", "Status", "Unreachable", "collect_status"]
