"""Buses carry published transitions from the engine to every output."""

from tocsin.bus.base import Bus, BusError, Subscription
from tocsin.bus.memory import MemoryBus

__all__ = ["Bus", "BusError", "MemoryBus", "Subscription"]
