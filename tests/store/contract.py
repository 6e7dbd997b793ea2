"""What every event log must do, written once; each backend's test module subclasses it.

`LogContract.create_log()` gives a fresh, empty log of the backend under test. Everything a
node writes goes through the log: entries with their leaf hashes, and, for a cluster leader,
the fencing epoch, the stream position and the refused events, in one atomic append; snapshot
records. The Merkle storage half of the interface has its own contract (`merkle_contract.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import pytest

from tocsin.errors import Fenced, IntegrityError
from tocsin.store import EventLog, LogEntry, Rejection, SnapshotRecord
from tocsin.store.leaves import entry_leaf_hash


def put(
    log: EventLog, rows: Sequence[LogEntry], **kwargs: object
) -> None:
    """Append rows with their true leaf hashes."""
    log.append(rows, [entry_leaf_hash(e) for e in rows], **kwargs)  # type: ignore[arg-type]


def refusal(stream_seq: int, event_id: str = "e9") -> Rejection:
    """An event a leader refused at `stream_seq`."""
    return Rejection(stream_seq, "radar-1", event_id, "sensor-1", f'{{"id":"{event_id}"}}',
                     [{"field": "time", "reason": "too far ahead"}], "a", None,
                     "2026-11-25T01:00:00Z")


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
        put(log, rows[:3])
        put(log, rows[3:])
        assert log.max_seq() == 4
        assert log.count() == 4
        assert list(log.read()) == rows
        assert list(log.read(2, 3)) == rows[1:3]
        assert list(log.read(3)) == rows[2:]
        assert list(log.read(5)) == []
        assert list(log.read(3, 2)) == []
        assert rows[0].obj()["id"] == "e1"

    def test_find_event_by_source_and_id(self, log: EventLog) -> None:
        put(log, [event(1, "e1"), transition(2, 1), event(3, "e1", source="radar-2")])
        assert log.find_event("radar-1", "e1") == 1
        assert log.find_event("radar-2", "e1") == 3
        assert log.find_event("radar-3", "e1") is None
        assert log.find_event("radar-1", "e2") is None

    def test_an_empty_batch_is_a_no_op(self, log: EventLog) -> None:
        put(log, [])
        assert log.max_seq() == 0

    @pytest.mark.parametrize("first", [0, 2, 5])
    def test_seqs_must_continue_the_log(self, log: EventLog, first: int) -> None:
        with pytest.raises(IntegrityError):
            put(log, [event(first, "e1")])
        assert log.max_seq() == 0
        put(log, [event(1, "e1")])
        with pytest.raises(IntegrityError):
            put(log, [event(1, "e2")])
        with pytest.raises(IntegrityError):
            put(log, [event(3, "e2")])
        assert list(log.read()) == [event(1, "e1")]

    def test_a_gap_inside_a_batch_is_refused(self, log: EventLog) -> None:
        with pytest.raises(IntegrityError):
            put(log, [event(1, "e1"), transition(3, 1)])
        assert log.max_seq() == 0 and list(log.read()) == []
        put(log, [event(1, "e1"), transition(2, 1)])
        assert log.max_seq() == 2

    def test_duplicate_event_key_is_refused(self, log: EventLog) -> None:
        put(log, [event(1, "e1")])
        with pytest.raises(IntegrityError):
            put(log, [event(2, "e1")])
        assert log.max_seq() == 1
        # the same id from another source is another event
        put(log, [event(2, "e1", source="radar-2")])
        assert log.max_seq() == 2

    def test_a_failing_batch_leaves_nothing(self, log: EventLog) -> None:
        put(log, [event(1, "e1")])
        batch = [event(2, "e2"), transition(3, 2), event(4, "e1")]  # e1 is already logged
        with pytest.raises(IntegrityError):
            put(log, batch)
        assert log.max_seq() == 1
        assert list(log.read()) == [event(1, "e1")]
        assert log.find_event("radar-1", "e2") is None
        # and the log carries on from where it was
        put(log, batch[:2])
        assert log.max_seq() == 3

    def test_a_batch_repeating_its_own_key_leaves_nothing(self, log: EventLog) -> None:
        with pytest.raises(IntegrityError):
            put(log, [event(1, "e1"), event(2, "e1")])
        assert log.max_seq() == 0 and log.find_event("radar-1", "e1") is None

    def test_reads_page_through_long_logs(self, log: EventLog) -> None:
        """More entries than a page of the backends that read in pages."""
        rows = [event(1, "e1")] + [transition(seq, 1) for seq in range(2, 12_002)]
        put(log, rows)
        assert [e.seq for e in log.read()] == list(range(1, 12_002))
        assert [e.seq for e in log.read(4_999, 5_002)] == [4_999, 5_000, 5_001, 5_002]

    def test_read_bodies_is_read_cut_to_what_a_replay_needs(self, log: EventLog) -> None:
        """The replay's read: (seq, kind, body) of exactly the entries `read` gives, paged the
        same way, with the body's text unchanged."""
        rows = [event(1, "e1", key_name="k", recorded_at="2026-11-25T01:00:01Z")] + [
            transition(seq, 1) for seq in range(2, 12_002)]
        put(log, rows)
        whole = [(e.seq, e.kind, e.body) for e in rows]
        assert [tuple(r) for r in log.read_bodies()] == whole
        assert [tuple(r) for r in log.read_bodies(4_999, 5_002)] == whole[4_998:5_002]
        assert [tuple(r) for r in log.read_bodies(12_001)] == whole[-1:]
        assert list(log.read_bodies(12_002)) == []
        assert list(log.read_bodies(3, 2)) == []
        assert all(type(seq) is int for seq, _, _ in log.read_bodies(1, 3))

    def test_metadata(self, log: EventLog) -> None:
        assert log.get_meta("regions") is None
        log.set_meta("regions", "ua-oblasts")
        log.set_meta("regions", "ua-hromadas")
        assert log.get_meta("regions") == "ua-hromadas"

    def test_find_events_of_a_batch(self, log: EventLog) -> None:
        put(log, [event(1, "e1"), transition(2, 1), event(3, "e2", source="radar-2")])
        many = [(f"radar-{i}", "x") for i in range(2500)]  # more than one query's worth
        assert log.find_events([("radar-1", "e1"), ("radar-2", "e2"), ("radar-1", "x"),
                                ("radar-1", "e1"), *many]) \
            == {("radar-1", "e1"): 1, ("radar-2", "e2"): 3}
        assert log.find_events([]) == {}

    def test_one_leaf_hash_per_entry(self, log: EventLog) -> None:
        with pytest.raises(ValueError):
            log.append([event(1, "e1")], [])
        assert log.max_seq() == 0

    # --- fencing, stream position, refused events --------------------------------------------

    def test_a_stale_epoch_cannot_append(self, log: EventLog) -> None:
        first, position = log.start_epoch("node-a", "2026-11-25T01:00:00Z")
        assert position == 0
        put(log, [event(1, "e1")], epoch=first, position=7)
        second, position = log.start_epoch("node-b", "2026-11-25T01:00:05Z")
        assert second == first + 1 and position == 7
        state = log.cluster_state()
        assert (state.epoch, state.leader, state.stream_seq) == (second, "node-b", 7)
        assert state.leader_since is not None and state.leader_since.startswith("2026-11-25")
        with pytest.raises(Fenced):
            put(log, [event(2, "e2")], epoch=first, position=9)
        with pytest.raises(Fenced):  # not even the position alone
            put(log, [], epoch=first, position=9)
        with pytest.raises(Fenced):
            put(log, [], epoch=first, rejections=[refusal(8)])
        assert log.max_seq() == 1 and log.cluster_state().stream_seq == 7
        assert log.rejected_count() == 0 and log.find_event("radar-1", "e2") is None
        put(log, [event(2, "e2")], epoch=second, position=9)
        assert log.max_seq() == 2 and log.cluster_state().stream_seq == 9

    def test_the_position_moves_only_forward_and_only_with_its_batch(
        self, log: EventLog
    ) -> None:
        put(log, [event(1, "e1")], position=5)
        put(log, [], position=3)
        assert log.cluster_state().stream_seq == 5
        with pytest.raises(IntegrityError):  # the batch fails: its position does not move
            put(log, [event(2, "e1")], position=9, rejections=[refusal(8)])
        assert log.cluster_state().stream_seq == 5 and log.rejected_count() == 0

    def test_rejections_are_kept_with_the_position(self, log: EventLog) -> None:
        epoch, _ = log.start_epoch("a", "2026-11-25T01:00:00Z")
        bad, worse = refusal(3), refusal(5, "e9")
        put(log, [], epoch=epoch, position=3, rejections=[bad])
        put(log, [], epoch=epoch, position=5, rejections=[worse, bad])  # bad: kept once
        assert log.rejections() == [bad, worse]
        assert log.rejections(after=3) == [worse]
        assert log.rejections(limit=1) == [bad]
        assert log.rejection("radar-1", "e9") == worse  # the latest refusal
        assert log.rejection("radar-1", "nope") is None
        assert log.rejected_count() == 2
        assert log.cluster_state().stream_seq == 5
        assert bad.to_dict()["event"] == {"id": "e9"}

    # --- snapshot records --------------------------------------------------------------------

    def test_snapshot_records_newest_first(self, log: EventLog) -> None:
        assert log.snapshots() == []
        a = SnapshotRecord(100, "aa", "snapshot-000000000100.pickle")
        b = SnapshotRecord(250, "bb", "snapshot-000000000250.pickle")
        c = SnapshotRecord(250, "cc", "node-2-000000000250.pickle")
        for r in (a, b, c):
            log.record_snapshot(r)
        assert log.snapshots() == [c, b, a]
        assert log.snapshots(limit=1) == [c]
        again = SnapshotRecord(100, "a2", a.name)  # the same file written again
        log.record_snapshot(again)
        assert log.snapshots()[-1] == again
