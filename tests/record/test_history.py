"""`tocsin history import`: the official siren record mapped to KATOTTG, idempotently, with the
rows it cannot map reported by line number; kept out of the log."""

from __future__ import annotations

import gzip
import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tocsin.cli import main
from tocsin.history_import import RowProblem, load_names, read_official
from tocsin.store.history import HistoryAlert, HistoryStore, SQLHistoryStore

HEADER = "oblast,raion,hromada,level,started_at,finished_at,source\r\n"
ROWS = [
    "Lvivska oblast,,,oblast,2023-01-01 10:00:00+00:00,2023-01-01 11:00:00+00:00,official",
    "Kyivska oblast,Obukhivskyi raion,,raion,2023-01-01 10:05:00+00:00,"
    "2023-01-01 10:45:00+00:00,official",
    "Kyivska oblast,Obukhivskyi raion,m. Vasylkiv ta Vasylkivska terytorialna hromada,hromada,"
    "2023-01-01 10:10:00+00:00,2023-01-01 10:20:00+00:00,official",
    "Lubenskyi raion,Poltavska oblast,Hrebinkivska terytorialna hromada,hromada,"
    "2022-03-15 16:46:43+00:00,2022-03-15 17:20:00+00:00,official",
    "Atlantis oblast,,,oblast,2023-01-01 10:00:00+00:00,2023-01-01 11:00:00+00:00,official",
    "Lvivska oblast,,,city,2023-01-01 10:00:00+00:00,2023-01-01 11:00:00+00:00,official",
    "Lvivska oblast,,,oblast,yesterday,2023-01-01 11:00:00+00:00,official",
    "Lvivska oblast,,,oblast,2023-01-01 12:00:00+00:00,2023-01-01 11:00:00+00:00,official",
    "Kyiv City,,,oblast,2023-01-02 00:00:00+00:00,2023-01-02 00:30:00+00:00,official",
    "Львівська область,,,oblast,2023-01-03 00:00:00+00:00,2023-01-03 00:30:00+00:00,official",
]
LVIV = "UA46000000000026241"
OBUKHIV = "UA32120000000081110"
VASYLKIV = "UA32120030000030458"
HREBINKA_PREFIX = "UA5304"  # Lubenskyi raion of Poltavska
KYIV_CITY = "UA80000000000093317"


def _file(tmp_path: Path, rows: list[str], *, gz: bool = False) -> Path:
    text = HEADER + "".join(r + "\r\n" for r in rows)
    path = tmp_path / ("record.csv.gz" if gz else "record.csv")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def _s(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def test_rows_map_to_katottg_and_problems_keep_their_line_numbers() -> None:
    items = list(read_official(io.StringIO(HEADER + "\r\n".join(ROWS) + "\r\n", newline="")))
    alerts = [i for i in items if isinstance(i, HistoryAlert)]
    problems = [i for i in items if isinstance(i, RowProblem)]
    assert [(a.region, a.level) for a in alerts[:3]] == [
        (LVIV, "oblast"), (OBUKHIV, "raion"), (VASYLKIV, "hromada")]
    assert alerts[0].started_s == _s("2023-01-01T10:00:00+00:00")
    assert alerts[0].ended_s == _s("2023-01-01T11:00:00+00:00")
    assert alerts[3].region.startswith(HREBINKA_PREFIX) and alerts[3].level == "hromada"
    assert [a.region for a in alerts[4:]] == [KYIV_CITY, LVIV]  # Ukrainian names work too
    assert [(p.line, p.reason.split(":")[0].split(" ")[0]) for p in problems] == [
        (5, "repaired"), (6, "no"), (7, "level"), (8, "started_at/finished_at"), (9, "finished_at")]
    assert "Atlantis oblast" in problems[1].reason


def test_a_file_that_is_not_the_record_is_refused() -> None:
    (problem,) = read_official(io.StringIO("region,started_at,finished_at\r\nx,y,z\r\n"))
    assert isinstance(problem, RowProblem) and problem.line == 1
    assert "missing column(s) oblast, raion, hromada, level" in problem.reason


def test_import_is_idempotent_reports_unmapped_rows_and_stays_out_of_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, ROWS, gz=True)
    data = tmp_path / "data"
    assert main(["history", "import", str(path), "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "read 10 rows: 6 alerts (6 new, 0 already stored), 4 not mapped, 1 repaired" in out
    for line in (5, 6, 7, 8, 9):
        assert f"record.csv.gz:line {line}: " in err
    assert main(["history", "import", str(path), "--data-dir", str(data)]) == 0
    out, _ = capsys.readouterr()
    assert "6 alerts (0 new, 6 already stored)" in out and "6 alerts stored" in out
    conn = sqlite3.connect(data / "tocsin.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM history_alerts").fetchone() == (6,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "log" not in tables or conn.execute("SELECT COUNT(*) FROM log").fetchone() == (0,)
        imports = conn.execute("SELECT file, rows, added, unmapped FROM history_imports "
                               "ORDER BY id").fetchall()
    finally:
        conn.close()
    assert imports == [("record.csv.gz", 10, 6, 4), ("record.csv.gz", 10, 0, 4)]


def test_a_file_of_another_shape_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "volunteer.csv"
    path.write_text("region,started_at,finished_at,naive\nKyiv,a,b,False\n")
    assert main(["history", "import", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    assert "missing column(s)" in capsys.readouterr().err
    assert main(["history", "import", str(tmp_path / "nope.csv"), "--data-dir",
                 str(tmp_path / "d")]) == 2


def test_the_store_answers_overlaps_and_coarser_regions(tmp_path: Path, ua: object) -> None:
    from tocsin.geo import RegionSet

    assert isinstance(ua, RegionSet)
    check_history_store(HistoryStore(tmp_path / "tocsin.db", ua))


def check_history_store(store: SQLHistoryStore) -> None:
    """What every history backend answers (the store is closed afterwards)."""
    base = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
    alerts = [HistoryAlert(LVIV, "oblast", base, base + 100),
              HistoryAlert(VASYLKIV, "hromada", base + 50, base + 500),
              HistoryAlert(OBUKHIV, "raion", base + 1000, base + 1100)]
    assert store.add(alerts) == 3
    assert store.add(alerts[1:]) == 0 and store.count() == 3  # each alert once
    store.record_import("official_data_en.csv", "ab" * 32, 3, 3, 0)
    assert [i["file"] for i in store.imports()] == ["official_data_en.csv"]
    assert store.span() == (base, base + 1100)

    def ids(**kw: object) -> list[str]:
        return [a.region for a in store.alerts(**kw)]  # type: ignore[arg-type]

    assert ids() == [LVIV, VASYLKIV, OBUKHIV]
    assert ids(since_s=base + 101) == [VASYLKIV, OBUKHIV]
    assert ids(until_s=base + 49) == [LVIV]
    assert ids(regions={OBUKHIV}, newest_first=True) == [OBUKHIV]
    assert store.regions_for({VASYLKIV}) == {VASYLKIV, OBUKHIV, "UA32000000000030281"}
    assert {VASYLKIV, OBUKHIV, "UA32000000000030281"} <= store.under("UA32000000000030281")
    assert ids(regions=store.under(OBUKHIV)) == [VASYLKIV, OBUKHIV]
    records = store.query(leaves={VASYLKIV})
    assert [r["region"] for r in records] == [OBUKHIV, VASYLKIV]
    assert records[0]["source"] == "official-history" and records[0]["ended_at"]
    assert store.query(leaves=set(), limit=5) == []
    store.close()


def test_the_name_table_covers_every_oblast_of_the_record() -> None:
    names = load_names()
    for oblast in ("Vinnytska oblast", "Kyiv City", "Luhanska oblast", "Zakarpatska oblast"):
        assert names.oblast(oblast) is not None, oblast


def test_the_whole_official_record_imports(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    en = shared_data / "air_raid_sirens" / "official_data_en.csv.gz"
    uk = shared_data / "air_raid_sirens" / "official_data_uk.csv.gz"
    assert main(["history", "import", str(en), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "read 43031 rows: 43031 alerts (43031 new, 0 already stored), 0 not mapped, " \
           "1 repaired" in out
    # the Ukrainian edition is the same record, four months shorter: nothing new
    assert main(["history", "import", str(uk), "--data-dir", str(data)]) == 0
    assert "33978 alerts (0 new, 33978 already stored)" in capsys.readouterr().out
    store = HistoryStore(data / "tocsin.db")
    try:
        levels = {a.level for a in store.alerts()}
        assert store.count() == 43031 and levels == {"oblast", "raion", "hromada"}
    finally:
        store.close()
