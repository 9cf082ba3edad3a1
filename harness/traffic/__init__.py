"""The application's own traffic through the gate, and what it proves about a plan."""

from harness.traffic.clients import Request, Timeline, Traffic
from harness.traffic.logins import Logins, provision_logins
from harness.traffic.run import TrafficOptions, TrafficRun
from harness.traffic.sampler import LockSampler, LockStats

__all__ = [
    "LockSampler",
    "LockStats",
    "Logins",
    "Request",
    "Timeline",
    "Traffic",
    "TrafficOptions",
    "TrafficRun",
    "provision_logins",
]
