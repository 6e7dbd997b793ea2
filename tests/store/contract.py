"""What every event log must do, written once; each backend's test module subclasses it.

`LogContract.create_log()` gives a fresh, empty log of the backend under test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import pytest

from tocsin.errors import IntegrityError
from tocsin.store import EventLog, LogEntry


def event(
    seq: int,
    event_id: str,
    source: str = "radar-1",
    *,
    key_name: str | None = None,
    recorded_at: str | None = None,
) -> LogEntry:
    """An event row as the ledger writes it."""
    body = (f'{{"id":"{event_id}", "type":"tick", "time":"2026-11-25T01:00:00Z", '
            f'"source":"{source}"}}')
    return LogEntry(seq, "event", body, source, event_id, key_name=key_name,
                    recorded_at=recorded_at)


def transition(seq: int, cause_seq: int) -> LogEntry:
    """A transition row caused by the event at `cause_seq`."""
    body = f'{{"seq":{seq}, "type":"alert_started", "cause_seq":{cause_seq}}}'
    return LogEntry(seq, "transition", body, cause_seq=cause_seq)


class LogContract(ABC):
    """Behaviour shared by every `EventLog` backend."""

    @abstractmethod
    def create_log(self) -> EventLog:
        """A fresh, empty log."""

    @pytest.fixture()
    def log(self) -> Iterator[EventLog]:
        log = self.create_log()
        try:
            yield log
        finally:
            log.close()

    def test_starts_empty(self, log: EventLog) -> None:
        assert log.max_seq() == 0
        assert log.count() == 0
        assert list(log.read()) == []
        assert log.find_event("radar-1", "e1") is None

    def test_append_then_read_back_exactly(self, log: EventLog) -> None:
        rows = [event(1, "e1", key_name="sensor-key", recorded_at="2026-11-25T01:00:01Z"),
                transition(2, 1), transition(3, 1), event(4, "e2", source="radar-2")]
        log.append(rows[:3])
        log.append(rows[3:])
        assert log.max_seq() == 4
        assert log.count() == 4
        assert list(log.read()) == rows
        assert list(log.read(2, 3)) == rows[1:3]
        assert list(log.read(3)) == rows[2:]
        assert list(log.read(5)) == []
        assert list(log.read(3, 2)) == []
        assert rows[0].obj()["id"] == "e1"

    def test_find_event_by_source_and_id(self, log: EventLog) -> None:
        log.append([event(1, "e1"), transition(2, 1), event(3, "e1", source="radar-2")])
        assert log.find_event("radar-1", "e1") == 1
        assert log.find_event("radar-2", "e1") == 3
        assert log.find_event("radar-3", "e1") is None
        assert log.find_event("radar-1", "e2") is None

    def test_an_empty_batch_is_a_no_op(self, log: EventLog) -> None:
        log.append([])
        assert log.max_seq() == 0

    @pytest.mark.parametrize("first", [0, 2, 5])
    def test_seqs_must_continue_the_log(self, log: EventLog, first: int) -> None:
        with pytest.raises(IntegrityError):
            log.append([event(first, "e1")])
        assert log.max_seq() == 0
        log.append([event(1, "e1")])
        with pytest.raises(IntegrityError):
            log.append([event(1, "e2")])
        with pytest.raises(IntegrityError):
            log.append([event(3, "e2")])
        assert list(log.read()) == [event(1, "e1")]

    def test_a_gap_inside_a_batch_is_refused(self, log: EventLog) -> None:
        with pytest.raises(IntegrityError):
            log.append([event(1, "e1"), transition(3, 1)])
        assert log.max_seq() == 0 and list(log.read()) == []
        log.append([event(1, "e1"), transition(2, 1)])
        assert log.max_seq() == 2

    def test_duplicate_event_key_is_refused(self, log: EventLog) -> None:
        log.append([event(1, "e1")])
        with pytest.raises(IntegrityError):
            log.append([event(2, "e1")])
        assert log.max_seq() == 1
        # the same id from another source is another event
        log.append([event(2, "e1", source="radar-2")])
        assert log.max_seq() == 2

    def test_a_failing_batch_leaves_nothing(self, log: EventLog) -> None:
        log.append([event(1, "e1")])
        batch = [event(2, "e2"), transition(3, 2), event(4, "e1")]  # e1 is already logged
        with pytest.raises(IntegrityError):
            log.append(batch)
        assert log.max_seq() == 1
        assert list(log.read()) == [event(1, "e1")]
        assert log.find_event("radar-1", "e2") is None
        # and the log carries on from where it was
        log.append(batch[:2])
        assert log.max_seq() == 3

    def test_a_batch_repeating_its_own_key_leaves_nothing(self, log: EventLog) -> None:
        with pytest.raises(IntegrityError):
            log.append([event(1, "e1"), event(2, "e1")])
        assert log.max_seq() == 0 and log.find_event("radar-1", "e1") is None

    def test_reads_page_through_long_logs(self, log: EventLog) -> None:
        """More entries than a page of the backends that read in pages."""
        rows = [event(1, "e1")] + [transition(seq, 1) for seq in range(2, 12_002)]
        log.append(rows)
        assert [e.seq for e in log.read()] == list(range(1, 12_002))
        assert [e.seq for e in log.read(4_999, 5_002)] == [4_999, 5_000, 5_001, 5_002]

    def test_metadata(self, log: EventLog) -> None:
        assert log.get_meta("regions") is None
        log.set_meta("regions", "ua-oblasts")
        log.set_meta("regions", "ua-hromadas")
        assert log.get_meta("regions") == "ua-hromadas"
