"""Footprint -> regions: tocsin's matcher (`RegionSet.hits`) against PostGIS `ST_Intersects`.

    python bench/footprint.py [--n 1000] [--seed 1] [--dsn postgresql://postgres@127.0.0.1:5432]

Both answer the same question for the same footprints on `ua-hromadas` (1,769 leaves): which
leaf regions does this cone or disc touch? The query polygon of both is
`RegionSet.footprint_polygon(fp)`, the lon/lat outline `hits()` intersects. PostGIS gets the
same leaf polygons (`Region.geometry`, SRID 4326) in a table with a GiST index, in a database of
its own (`tocsin_bench`, created with `CREATE EXTENSION postgis`; Debian's
`postgresql-15-postgis-3`).

Timed per query, on the wall clock, in one run, cases interleaved:

* tocsin: `RegionSet.hits(fp)` (which also gives each region's geodesic distance);
* PostGIS round trip: one prepared `SELECT id ... WHERE ST_Intersects(geom, $1)` through
  psycopg 3 over TCP on 127.0.0.1, the polygon sent as WKB (what an application would do);
* PostGIS server side: the same query run inside PostgreSQL by a PL/pgSQL loop over a table of
  the query polygons, timed with `clock_timestamp()` around each query (no client, no network,
  no parsing, plan cached): the engine's own cost.

The answers are compared region by region; regions only one side reports are measured against
the footprint outline (they are boundary cases: a region that touches the outline within metres,
decided in lon/lat straight edges by PostGIS and in the projected plane by tocsin).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from typing import Any

import shapely

from common import line_chart, origins, pct, table, write_result  # noqa: I001
from tocsin.geo import Footprint, RegionSet, load_region_set
from tocsin.geo.planar import GEOD

# (label, length in metres, heading given?, half-angle): a drone's cone, a cruise missile's,
# a ballistic missile's, and a carrier's disc
CASES = (
    ("cone 50 km", 50_000.0, True, 30.0),
    ("cone 190 km (drone)", 190_000.0, True, 22.5),
    ("cone 800 km", 800_000.0, True, 15.0),
    ("disc 300 km", 300_000.0, False, 180.0),
)
DB = "tocsin_bench"

LOOP = """
CREATE OR REPLACE FUNCTION bench_loop(reps integer)
RETURNS TABLE (qid integer, us double precision, n integer) LANGUAGE plpgsql AS $$
DECLARE
    q record;
    t0 timestamptz;
    cnt integer;
    best double precision;
BEGIN
    FOR q IN SELECT id, geom FROM queries ORDER BY id LOOP
        best := NULL;
        FOR r IN 1..reps LOOP
            t0 := clock_timestamp();
            SELECT count(*) INTO cnt FROM (
                SELECT l.id FROM leaves l WHERE ST_Intersects(l.geom, q.geom)) s;
            us := extract(epoch FROM clock_timestamp() - t0) * 1e6;
            best := CASE WHEN best IS NULL THEN us ELSE best END;
        END LOOP;
        qid := q.id; n := cnt; us := best;
        RETURN NEXT;
    END LOOP;
END $$;
"""




def connect(dsn: str) -> Any:
    """A connection to the bench database, made (with PostGIS) if missing; exits if impossible."""
    import psycopg

    base = dsn.rstrip("/")
    try:
        with psycopg.connect(base + "/postgres", autocommit=True, connect_timeout=5) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (DB,)).fetchone():
                admin.execute(f"CREATE DATABASE {DB}")
        conn = psycopg.connect(f"{base}/{DB}", autocommit=True)
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as exc:
        raise SystemExit(
            f"PostGIS is not available at {base}: {exc}\n"
            "install Debian's postgresql-15-postgis-3 (apt-get install postgresql-15-postgis-3)"
        ) from None
    return conn


def load_leaves(conn: Any, regions: RegionSet) -> dict[str, Any]:
    """The set's leaf polygons in table `leaves` with a GiST index."""
    conn.execute("DROP TABLE IF EXISTS leaves")
    conn.execute("CREATE TABLE leaves (id text PRIMARY KEY, geom geometry(Geometry, 4326))")
    rows = [(rid, shapely.to_wkb(regions.regions[rid].geometry))
            for rid in regions.leaves if not regions.regions[rid].geometry.is_empty]
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO leaves VALUES (%s, ST_SetSRID(ST_GeomFromWKB(%s), 4326))",
                        rows)
    conn.execute("CREATE INDEX leaves_geom ON leaves USING gist (geom)")
    conn.execute("ANALYZE leaves")
    version = conn.execute("SELECT postgis_full_version()").fetchone()[0]
    return {"leaves": len(rows), "load_s": round(time.perf_counter() - start, 2),
            "postgis": version.split('"')[1] if '"' in version else version,
            "geos": version.split("GEOS=")[1].split('"')[1] if "GEOS=" in version else None}


def boundary_gap_m(poly: Any, geom: Any, lon: float, lat: float) -> float:
    """Metres between a region and the footprint outline (0 when they touch)."""
    near = shapely.shortest_line(geom, poly)
    (x0, y0), (x1, y1) = shapely.get_coordinates(near)
    _, _, d = GEOD.inv(x0, y0, x1, y1)
    return float(d)


def run_case(conn: Any, regions: RegionSet, label: str, footprints: list[Footprint],
             reps: int) -> dict[str, Any]:
    polygons = [regions.footprint_polygon(fp) for fp in footprints]
    wkbs = [shapely.to_wkb(p) for p in polygons]
    sql = "SELECT id FROM leaves WHERE ST_Intersects(geom, ST_SetSRID(ST_GeomFromWKB(%b), 4326))"
    for fp, wkb in list(zip(footprints, wkbs, strict=True))[:20]:  # warm-up, both sides
        regions.hits(fp)
        conn.execute(sql, (wkb,), prepare=True).fetchall()
    ours: list[float] = []
    theirs: list[float] = []
    ours_ids: list[set[str]] = []
    theirs_ids: list[set[str]] = []
    clock = time.perf_counter_ns
    for fp, wkb in zip(footprints, wkbs, strict=True):
        # interleaved, so a busy moment of the machine hits both sides alike
        t0 = clock()
        hits = regions.hits(fp)
        t1 = clock()
        rows = conn.execute(sql, (wkb,), prepare=True).fetchall()
        t2 = clock()
        ours.append((t1 - t0) / 1000)
        theirs.append((t2 - t1) / 1000)
        ours_ids.append({rid for rid, _ in hits})
        theirs_ids.append({r[0] for r in rows})
    # server side: the same query inside PostgreSQL, best of `reps` per polygon
    conn.execute("DROP TABLE IF EXISTS queries")
    conn.execute("CREATE TABLE queries (id integer PRIMARY KEY, geom geometry(Geometry, 4326))")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO queries VALUES (%s, ST_SetSRID(ST_GeomFromWKB(%b), 4326))",
                        list(enumerate(wkbs)))
    conn.execute(LOOP)
    server = conn.execute("SELECT qid, us, n FROM bench_loop(%s)", (reps,)).fetchall()
    server_us = [r[1] for r in server]
    assert [r[2] for r in server] == [len(s) for s in theirs_ids]
    # tocsin best-of-reps too, for the like-for-like server-side comparison; and its match
    # alone (the intersection step, without drawing the outline or measuring distances,
    # which PostGIS is not asked to do)
    index = regions._index  # the leaf index behind hits(): timed in parts here
    ours_best, match_best = [], []
    for fp in footprints:
        best = match = None
        planar = index._planar_footprint(fp)
        # the step hits() runs: the compiled kernel on the projected ring where it is built
        # (`tocsin.geo.kernel`), else the pre-filters and GEOS
        ring = planar[1][1:] if fp.is_disc else planar[1]
        rx, ry = ring[:, 0].copy(), ring[:, 1].copy()
        kernel = index._core is not None and not planar[2]
        for _ in range(reps):
            t0 = clock()
            regions.hits(fp)
            t1 = clock()
            if kernel:
                index._cover_ring(rx, ry)
            else:
                index._intersecting(*planar)
            t2 = clock()
            best = (t1 - t0) / 1000 if best is None else min(best, (t1 - t0) / 1000)
            match = (t2 - t1) / 1000 if match is None else min(match, (t2 - t1) / 1000)
        ours_best.append(best or 0.0)
        match_best.append(match or 0.0)
    plan = conn.execute("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql.replace("%b", "%s"),
                        (wkbs[0],)).fetchall()
    # agreement
    only_ours = only_theirs = differing = 0
    gaps: list[float] = []
    for fp, poly, a, b in zip(footprints, polygons, ours_ids, theirs_ids, strict=True):
        if a == b:
            continue
        differing += 1
        only_ours += len(a - b)
        only_theirs += len(b - a)
        for rid in a ^ b:
            gaps.append(boundary_gap_m(poly, regions.regions[rid].geometry, fp.lon, fp.lat))
    hits_mean = statistics.mean(len(s) for s in theirs_ids)
    p50_ours, p50_rt, p50_srv = pct(ours, 0.5), pct(theirs, 0.5), pct(server_us, 0.5)
    return {
        "case": label, "queries": len(footprints), "mean_regions": round(hits_mean, 1),
        "tocsin_p50_us": round(p50_ours, 1), "tocsin_p99_us": round(pct(ours, 0.99), 1),
        "tocsin_best_p50_us": round(pct(ours_best, 0.5), 1),
        "tocsin_match_only_p50_us": round(pct(match_best, 0.5), 1),
        "ratio_server_match_only": round(p50_srv / pct(match_best, 0.5), 2),
        "postgis_roundtrip_p50_us": round(p50_rt, 1),
        "postgis_roundtrip_p99_us": round(pct(theirs, 0.99), 1),
        "postgis_server_p50_us": round(p50_srv, 1),
        "postgis_server_p99_us": round(pct(server_us, 0.99), 1),
        "ratio_roundtrip": round(p50_rt / p50_ours, 2),
        "ratio_server": round(p50_srv / pct(ours_best, 0.5), 2),
        "ratio_roundtrip_total": round(sum(theirs) / sum(ours), 2),
        "queries_differing": differing, "regions_only_tocsin": only_ours,
        "regions_only_postgis": only_theirs,
        "max_boundary_gap_m": round(max(gaps), 1) if gaps else None,
        # the query plan (the GiST index is used), the polygon's literal shortened
        "explain": [re.sub(r"'[0-9A-F]{40,}'", "'...'", r[0]) for r in plan],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="footprints per case")
    parser.add_argument("--reps", type=int, default=3, help="server-side repetitions (best of)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args(argv)
    regions = load_region_set("ua-hromadas")
    conn = connect(args.dsn)
    info = load_leaves(conn, regions)
    print(f"{regions!r}; PostGIS {info['postgis']} (GEOS {info['geos']}), "
          f"{info['leaves']} leaves loaded in {info['load_s']} s")
    rng = random.Random(args.seed)
    points = origins(regions, args.n, rng)
    rows = []
    for label, length, directed, half in CASES:
        fps = [Footprint(lat, lon, length, rng.uniform(0, 360) if directed else None, half)
               for lat, lon in points]
        rows.append(run_case(conn, regions, label, fps, args.reps))
        print(f"  {label}: done", file=sys.stderr, flush=True)
    conn.execute("DROP TABLE IF EXISTS queries")
    conn.close()
    print()
    print(table(
        "footprint -> regions, p50 µs per query (ratio: PostGIS time / tocsin time)",
        ["case", "regions", "tocsin", "PostGIS rt", "ratio rt", "tocsin best", "PostGIS srv",
         "ratio srv", "match only", "ratio", "differ"],
        [[r["case"], r["mean_regions"], r["tocsin_p50_us"], r["postgis_roundtrip_p50_us"],
          f"{r['ratio_roundtrip']:.1f}x", r["tocsin_best_p50_us"], r["postgis_server_p50_us"],
          f"{r['ratio_server']:.1f}x", r["tocsin_match_only_p50_us"],
          f"{r['ratio_server_match_only']:.1f}x", f"{r['queries_differing']}/{r['queries']}"]
         for r in rows]))
    for r in rows:
        if r["queries_differing"]:
            print(f"  {r['case']}: {r['regions_only_tocsin']} region(s) only tocsin reports, "
                  f"{r['regions_only_postgis']} only PostGIS; all within "
                  f"{r['max_boundary_gap_m']} m of the footprint outline")
    geo = statistics.geometric_mean
    summary = {"ratio_roundtrip_geomean": round(geo([r["ratio_roundtrip"] for r in rows]), 2),
               "ratio_server_geomean": round(geo([r["ratio_server"] for r in rows]), 2),
               "ratio_server_min": min(r["ratio_server"] for r in rows),
               "ratio_server_match_only_geomean": round(
                   geo([r["ratio_server_match_only"] for r in rows]), 2)}
    print(f"geometric mean ratio: {summary['ratio_roundtrip_geomean']}x (round trip), "
          f"{summary['ratio_server_geomean']}x (server side), "
          f"{summary['ratio_server_match_only_geomean']}x (server side, match only)")
    write_result("footprint", {"setup": info, "cases": rows, "summary": summary,
                               "n": args.n, "seed": args.seed})
    line_chart(
        write_path("footprint.svg"), "footprint -> regions, p50 per query", "mean regions hit",
        "µs per query (log)",
        [("tocsin hits()", sorted((r["mean_regions"], r["tocsin_p50_us"]) for r in rows)),
         ("PostGIS round trip", sorted((r["mean_regions"], r["postgis_roundtrip_p50_us"])
                                       for r in rows)),
         ("PostGIS server side", sorted((r["mean_regions"], r["postgis_server_p50_us"])
                                        for r in rows))],
        log_y=True)
    return 0


def write_path(name: str) -> Any:
    from common import RESULTS

    return RESULTS / name


if __name__ == "__main__":
    raise SystemExit(main())
