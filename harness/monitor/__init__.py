"""Monitoring for the retailer's database: the plan's ``DatabaseMonitor`` and a ``status`` command.

``collect_status`` gathers health, connections by application_name and state,
slow queries, per-schema sizes, replication lag and PgBouncer's pools into a
``Status``; ``harness.monitor.command.add_parser`` registers ``harness status``.
Failures it meets are named with ``harness.routing.classify``'s kinds.
"""

from __future__ import annotations

from harness.monitor.collect import ServerStatus, Status, Unreachable, collect_status

__all__ = ["ServerStatus", "Status", "Unreachable", "collect_status"]
