"""Command line: `tocsin serve | simulate | replay | verify | regions | keys | …`.

Exit codes: 0 success, 1 a check failed (replay mismatch), 2 bad input (with the line number,
field and reason on stderr), 3 the log could not be read or written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tocsin import __version__
from tocsin.cli.common import (
    EXIT_CHECK,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_STORE,
    duration,
    err,
    latitude,
    longitude,
)
from tocsin.cli.counterfactual import add_parser as add_counterfactual_parser
from tocsin.cli.counterfactual import rewrite_argv
from tocsin.cli.edge import cmd_stream_edge
from tocsin.cli.engine import cmd_regions_list, cmd_regions_locate, cmd_replay, cmd_simulate
from tocsin.cli.record import cmd_audit, cmd_history_import, cmd_verify, cmd_witness
from tocsin.cli.regions import cmd_regions_check
from tocsin.cli.report import add_parser as add_report_parser
from tocsin.cli.scenario import add_parsers as add_scenario_parsers
from tocsin.cli.server import cmd_keys_create, cmd_keys_list, cmd_keys_revoke, cmd_serve
from tocsin.cli.standards import cmd_cap_import, cmd_siren_sim, cmd_sirens_import, cmd_sirens_list
from tocsin.errors import (
    PolicyError,
    RegionSetError,
    StoreError,
    TocsinError,
    ValidationError,
)
from tocsin.geo import DEFAULT_REGION_SET
from tocsin.store.admin import ROLES

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also used to document them)."""
    parser = argparse.ArgumentParser(
        prog="tocsin", description="Open civil-defence software for air-raid warning."
    )
    parser.add_argument("--version", action="version", version=f"tocsin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("simulate", help="apply a JSONL file of events; print the transitions",
                       description=cmd_simulate.__doc__)
    p.add_argument("events", nargs="?", metavar="EVENTS.jsonl",
                   help="one event per line ('-' reads stdin)")
    p.add_argument("--scenario", help="play a bundled scenario instead of a file")
    p.add_argument("--regions", default=DEFAULT_REGION_SET,
                   help="region set name (ua-oblasts, ua-raions, ua-hromadas) or GeoJSON path")
    p.add_argument("--policy", help="policy file (JSON or TOML)")
    p.add_argument("--out", help="write transitions here instead of stdout")
    p.add_argument("--data-dir", help="also keep the log in this (empty) data directory")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay", help="rebuild state from a log and check every transition",
                       description=cmd_replay.__doc__)
    p.add_argument("--data-dir", help="the data directory holding tocsin.db")
    p.add_argument("--regions", help="region set (default: the one recorded in the log)")
    p.add_argument("--policy", help="policy file (default: the one recorded in the log)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("serve", help="run the HTTP API, engine and outputs",
                       description=cmd_serve.__doc__)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8080)")
    p.add_argument("--data-dir", help="data directory (default ./tocsin-data)")
    p.add_argument("--regions", help="region set name or GeoJSON path (default ua-hromadas)")
    p.add_argument("--policy", help="policy file (JSON or TOML)")
    p.add_argument("--private", action="store_true", help="require a key for reads too")
    p.add_argument("--mode", choices=("actual", "exercise", "test"),
                   help="deployment mode (CAP status); default actual")
    p.add_argument("--demo", nargs="?", const="", metavar="NAME|FILE|record:YYYY-MM-DD",
                   help="play a drill in a loop, marked as an exercise (default: the bundled "
                        "record day)")
    p.add_argument("--speed", type=float, metavar="X",
                   help="with --demo: play X times faster than real time (default 1)")
    p.add_argument("--public-url", metavar="URL",
                   help="the server's public base URL, e.g. https://alerts.example.gov.ua/ "
                        "(links in the CAP feed; default http://HOST:PORT/)")
    p.add_argument("--allow-private-webhooks", action="store_true",
                   help="let webhooks target loopback, private and link-local addresses")
    p.add_argument("--log-key", metavar="PATH",
                   help="Ed25519 key (PEM) signing the log's tree heads (default: "
                        "~/.config/tocsin/keys/<fingerprint>.key, made on first start; the "
                        "data directory keeps only the public key)")
    p.add_argument("--witnesses", metavar="FILE",
                   help="witness public keys whose cosignatures to accept (one base64 key "
                        "and a name per line)")
    p.add_argument("--mqtt", metavar="URL",
                   help="MQTT broker for sirens, e.g. mqtt://127.0.0.1:1883 (default: off)")
    p.add_argument("--trusted-proxy", metavar="CIDR", action="append",
                   help="a reverse proxy whose X-Forwarded-For is believed (repeatable)")
    p.add_argument("--stream-workers", type=int, metavar="N",
                   help="also serve /api/v1/stream from N processes tailing the log "
                        "(on --stream-port)")
    p.add_argument("--stream-port", type=int, metavar="PORT",
                   help="port the stream workers share (default: --port + 1)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("stream-edge", help="serve /api/v1/stream from a tocsin's committed log",
                       description=cmd_stream_edge.__doc__)
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8080)")
    p.add_argument("--data-dir", help="the data directory of the tocsin serve to follow")
    p.add_argument("--private", action="store_true", help="require a key to stream")
    p.add_argument("--trusted-proxy", metavar="CIDR", action="append",
                   help="a reverse proxy whose X-Forwarded-For is believed (repeatable)")
    p.add_argument("--reuse-port", action="store_true",
                   help="share the port with other edges (SO_REUSEPORT)")
    p.add_argument("--wake-fd", type=int, metavar="FD",
                   help="a pipe the writer rings on each commit (set by serve --stream-workers; "
                   "without it the log is polled every 20 ms)")
    p.set_defaults(func=cmd_stream_edge)

    p = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = p.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    q = ksub.add_parser("create", help="create a key", description=cmd_keys_create.__doc__)
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.add_argument("--role", required=True, choices=ROLES)
    q.add_argument("--name", help="a name recorded with every event the key submits")
    q.add_argument("--source", action="append", default=[], dest="sources", metavar="SOURCE",
                   help="an event source the key may send as, besides its name (repeatable)")
    q.set_defaults(func=cmd_keys_create)
    q = ksub.add_parser("list", help="list keys", description=cmd_keys_list.__doc__)
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_keys_list)
    q = ksub.add_parser("revoke", help="revoke a key", description=cmd_keys_revoke.__doc__)
    q.add_argument("key", help="key id or name")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("regions", help="list region sets, locate points, check coverage")
    rsub = p.add_subparsers(dest="regions_command", metavar="SUBCOMMAND", required=True)
    q = rsub.add_parser("list", help="list the regions of a set",
                        description=cmd_regions_list.__doc__)
    q.add_argument("--set", default=DEFAULT_REGION_SET, help="region set name or GeoJSON path")
    q.add_argument("--level", help="only this level (oblast, raion, hromada, …)")
    q.set_defaults(func=cmd_regions_list)
    q = rsub.add_parser("locate", help="the regions containing a point",
                        description=cmd_regions_locate.__doc__)
    q.add_argument("lat", type=latitude, help="latitude (WGS84)")
    q.add_argument("lon", type=longitude, help="longitude (WGS84)")
    q.add_argument("--set", default=DEFAULT_REGION_SET, help="region set name or GeoJSON path")
    q.set_defaults(func=cmd_regions_locate)
    q = rsub.add_parser("check", help="gaps and overlaps between a set's leaves; --repair",
                        description=cmd_regions_check.__doc__)
    q.add_argument("file", metavar="FILE", help="GeoJSON file (.geojson, .geojson.gz) or set name")
    q.add_argument("--repair", action="store_true", help="repair gaps and overlaps")
    q.add_argument("--out", metavar="FILE", help="where --repair writes the repaired set")
    q.add_argument("--min-area", type=float, default=1.0, metavar="M2",
                   help="smallest gap or overlap reported, in square metres (default 1)")
    q.add_argument("--grid", type=float, default=1e-6, metavar="DEG",
                   help="coordinate grid of the check and repair, in degrees (default 1e-6)")
    q.add_argument("--examples", type=int, default=10, metavar="N",
                   help="gaps and overlaps listed of each kind (default 10)")
    q.set_defaults(func=cmd_regions_check)

    p = sub.add_parser("verify", help="check the log's Merkle tree and signed tree heads",
                       description=cmd_verify.__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", help="check this data directory offline")
    where.add_argument("--url", help="check a live server, e.g. http://127.0.0.1:8080")
    where.add_argument("--store", metavar="URL",
                       help="check a cluster's shared store offline, read-only, "
                            "postgresql://user@host:5432/db")
    p.add_argument("--public-key", metavar="KEY",
                   help="offline: the log's public key, a PEM file or base64 (default: the "
                        "data directory's log-signing.pub, or the key the store keeps)")
    p.add_argument("--head", metavar="FILE",
                   help="offline: a head kept elsewhere (an STH as /api/v1/log/sth serves it, "
                        "or a witness state file) the log must be consistent with")
    p.add_argument("--witness-key", metavar="PEM", action="append",
                   help="offline: require a head co-signed by this witness (repeatable)")
    p.add_argument("--state", metavar="FILE",
                   help="online: where the pinned key and last head are kept "
                        "(default ~/.tocsin-verify.json)")
    p.add_argument("--check-entries", type=int, default=16, metavar="N",
                   help="online: prove inclusion of N entries chosen at random (default 16)")
    p.add_argument("--latest", action="store_true",
                   help="online: check the latest N entries instead of random ones")
    p.add_argument("--full", action="store_true",
                   help="online: download every entry and rebuild the whole tree")
    p.add_argument("--timeout", type=float, default=30.0, help="online: seconds per request")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("witness", help="watch a log's heads, co-sign them, catch a split view",
                       description=cmd_witness.__doc__)
    p.add_argument("--url", required=True, help="the server, e.g. https://alerts.example.org")
    p.add_argument("--state", required=True, metavar="FILE",
                   help="the witness's state (the log's key, the last head verified)")
    p.add_argument("--key", required=True, metavar="K",
                   help="the witness's Ed25519 key (PKCS#8 PEM; made, with K.pub, if missing)")
    p.add_argument("--log-public-key", metavar="KEY",
                   help="the log's public key (PEM file or base64); default: pinned on first "
                        "contact")
    p.add_argument("--name", help="the witness's name printed with a new key")
    p.add_argument("--interval", type=float, default=10.0,
                   help="seconds between polls (default 10, at least 1)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--once", action="store_true", help="poll once and exit")
    p.set_defaults(func=cmd_witness)

    p = sub.add_parser("history", help="import past alerts from an outside record")
    hsub = p.add_subparsers(dest="history_command", metavar="SUBCOMMAND", required=True)
    q = hsub.add_parser("import", help="import the official air-raid alert record",
                        description=cmd_history_import.__doc__)
    q.add_argument("file", metavar="FILE",
                   help="official_data_en.csv or official_data_uk.csv (or .csv.gz)")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_history_import)

    p = sub.add_parser("audit", help="impacts and recorded attacks against alerts",
                       description=cmd_audit.__doc__,
                       epilog="tocsin audit counterfactual --help: generated record days "
                              "against the official alerts")
    p.add_argument("--data-dir", help="the data directory to audit (or --store)")
    p.add_argument("--attacks", metavar="FILE",
                   help="attack table (missile_attacks_daily.csv, plain or gzipped)")
    p.add_argument("--tolerance", type=duration, default=1800.0,
                   help="widen each attack window by this much on both sides (default 30m)")
    p.add_argument("--out", required=True, help="directory for summary.json, cases.csv and "
                                                "report.html")
    p.add_argument("--regions", help="region set to locate impacts (default: the log's)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("cap", help="CAP 1.2 alerts from other authorities")
    csub = p.add_subparsers(dest="cap_command", metavar="SUBCOMMAND", required=True)
    q = csub.add_parser("import", help="take a CAP alert into a data directory's log",
                        description=cmd_cap_import.__doc__)
    q.add_argument("file", metavar="FILE", help="a CAP 1.2 XML document ('-' reads stdin)")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.add_argument("--regions", help="region set for a new data directory (default: the log's)")
    q.add_argument("--mode", choices=("actual", "exercise", "test"),
                   help="deployment mode: Exercise and Test messages act only in their mode")
    q.add_argument("--force", action="store_true",
                   help="go ahead although the log looks open by another process")
    q.set_defaults(func=cmd_cap_import)

    p = sub.add_parser("sirens", help="the siren registry")
    ssub = p.add_subparsers(dest="sirens_command", metavar="SUBCOMMAND", required=True)
    q = ssub.add_parser("import", help="add or replace sirens from a CSV file",
                        description=cmd_sirens_import.__doc__)
    q.add_argument("file", metavar="CSV", help="columns id, lat, lon and optionally name")
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.add_argument("--regions", help="region set for a new data directory (default: the log's)")
    q.set_defaults(func=cmd_sirens_import)
    q = ssub.add_parser("list", help="list registered sirens", description=cmd_sirens_list.__doc__)
    q.add_argument("--data-dir", default="tocsin-data", help="the server's data directory")
    q.set_defaults(func=cmd_sirens_list)

    p = sub.add_parser("siren-sim", help="run simulated MQTT sirens (demos, tests, benchmarks)",
                       description=cmd_siren_sim.__doc__)
    p.add_argument("--count", type=int, help="how many sirens (default 1000, or all of --ids-from)")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="MQTT broker URL")
    p.add_argument("--fail-rate", type=float, default=0.0,
                   help="share of sirens that never acknowledge (default 0)")
    p.add_argument("--ids-from", metavar="CSV", help="take the siren ids from a registry CSV")
    p.add_argument("--prefix", default="sim-", help="id prefix of generated sirens (sim-00001…)")
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument("--seed", type=int, default=1, help="seed choosing the failing sirens")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--mode", choices=("actual", "exercise", "test"), default="actual",
                   help="listen on the topics of a server in this mode (default actual)")
    p.set_defaults(func=cmd_siren_sim)

    add_scenario_parsers(sub)
    add_counterfactual_parser(sub)
    add_report_parser(sub)
    _add_store_options(parser)
    return parser


# Commands whose --data-dir holds something kept per node, not in a cluster's shared store.
_PER_NODE = {
    "report": "copy a cluster's log to a data directory first",
}


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    """`--store URL` next to every `--data-dir`; `serve` also gets the cluster's options."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for name, command in getattr(action, "choices", {}).items():
            if name == "serve":
                command.add_argument("--bus", metavar="URL",
                                     help="NATS JetStream of a cluster, e.g. "
                                          "nats://127.0.0.1:4222 (needs --store)")
                command.add_argument("--node-id", help="this node's name in the cluster "
                                                       "(default: host name and port)")
                command.add_argument("--cluster-name",
                                     help="names the cluster's JetStream streams (default tocsin)")
            nested = [command]
            if command._subparsers is not None:
                nested = [c for a in command._subparsers._group_actions
                          for c in getattr(a, "choices", {}).values()]
            for leaf in nested:
                options = {o for a in leaf._actions for o in a.option_strings}
                if "--data-dir" in options and "--store" not in options:
                    leaf.add_argument(
                        "--store", metavar="URL",
                        help="a cluster's shared store, postgresql://user@host:5432/db "
                             "(instead of the SQLite files of --data-dir)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tocsin` command."""
    parser = build_parser()
    args = parser.parse_args(rewrite_argv(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    if getattr(args, "store", None) and args.command in _PER_NODE:
        err(f"--store: {_PER_NODE[args.command]}")
        return EXIT_INPUT
    try:
        result: int = args.func(args)
        return result
    except (RegionSetError, PolicyError, ValidationError) as exc:
        err(str(exc))
        return EXIT_INPUT
    except StoreError as exc:
        err(f"log: {exc}")
        return EXIT_STORE
    except TocsinError as exc:
        err(str(exc))
        return EXIT_CHECK
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
