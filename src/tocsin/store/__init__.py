"""Event logs: one append-only sequence of events and the transitions they caused."""

from tocsin.store.base import EventLog, LogEntry, open_log
from tocsin.store.memory import MemoryLog
from tocsin.store.sqlite import SQLiteLog

__all__ = ["EventLog", "LogEntry", "MemoryLog", "SQLiteLog", "open_log"]
