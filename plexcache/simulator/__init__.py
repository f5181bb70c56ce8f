"""A Plex Media Server simulator for tests and benchmarks (see docs/simulator.md)."""

from .library import BASE_TIME, Library
from .server import PMS_VERSION, Fault, Simulator

__all__ = ["BASE_TIME", "PMS_VERSION", "Fault", "Library", "Simulator"]
