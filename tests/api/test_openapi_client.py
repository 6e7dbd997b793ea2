"""A client generated from `/openapi.json` by openapi-python-client, unmodified, makes every
call against a live `tocsin serve` and lives with every answer (4xx bodies included)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests import servers

KHARKIV_OBLAST = "UA63000000000041885"
# endless by design (Server-Sent Events): its shape is tested with real SSE clients elsewhere
ENDLESS = {"stream_api_v1_stream_get"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("openapi")
    data = tmp / "data"
    admin = servers.create_key("admin", "--data-dir", str(data), name="generated")
    with servers.serving(data, tmp / "serve.log") as base:
        yield base, admin


@pytest.fixture(scope="module")
def generated(live: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    tool = shutil.which("openapi-python-client")
    if tool is None:
        pytest.skip("SKIPPED LOUDLY: openapi-python-client is not installed (test extra)")
    out = tmp_path_factory.mktemp("client")
    spec = out / "openapi.json"
    spec.write_bytes(httpx.get(live[0] + "/openapi.json", timeout=30).content)
    done = subprocess.run([tool, "generate", "--path", str(spec), "--meta", "none",
                           "--output-path", str(out / "tocsin_generated")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    # every operation is generated (the XML answers are kept raw in `.content`)
    assert "will not be generated" not in done.stdout + done.stderr, done.stdout
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("tocsin_generated")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith("tocsin_generated")]:
            del sys.modules[name]


def _operations(package: Any) -> dict[str, Any]:
    api = importlib.import_module(package.__name__ + ".api")
    found = {}
    for tag in pkgutil.iter_modules(api.__path__):
        group = importlib.import_module(f"{api.__name__}.{tag.name}")
        for op in pkgutil.iter_modules(group.__path__):
            found[op.name] = importlib.import_module(f"{group.__name__}.{op.name}")
    return found


def test_every_call_of_a_generated_client(live: tuple[str, str], generated: Any) -> None:
    base, admin = live
    models = importlib.import_module(generated.__name__ + ".models")
    client = generated.AuthenticatedClient(base_url=base, token=admin, timeout=30)
    anonymous = generated.Client(base_url=base, timeout=30)
    ops = _operations(generated)
    assert len(ops) >= 50

    def call(name: str, *args: Any, **kwargs: Any) -> Any:
        module = ops[name]
        fn = module.sync_detailed
        takes = inspect.signature(fn).parameters
        who = anonymous if isinstance(takes["client"].annotation, str) and \
            "AuthenticatedClient" not in takes["client"].annotation else client
        response = fn(*args, client=kwargs.pop("client", who), **kwargs)
        assert response.status_code < 500, (name, response.status_code, response.content)
        if 400 <= response.status_code < 500 and response.content.strip():
            # the declared error body parses into the declared model
            assert response.parsed is not None, (name, response.status_code, response.content)
            assert type(response.parsed).__name__ in {"Error", "MessageError"}, name
        return response

    done: set[str] = set()

    def run(name: str, *args: Any, **kwargs: Any) -> Any:
        done.add(name)
        return call(name, *args, **kwargs)

    # writes first, so the reads have something to show
    now_dt = datetime.now(UTC).replace(microsecond=0)
    alert = models.OperatorAlert(id="gen-1", type_=models.OperatorAlertType("operator_alert"),
                                 time=now_dt, source="console", regions=[KHARKIV_OBLAST],
                                 alert_type=models.OperatorAlertAlertType("air_raid"),
                                 action=models.OperatorAlertAction("raise"), operator="duty")
    r = run("post_events_api_v1_events_post", body=alert)
    assert r.status_code == 202
    bad = models.Detection(id="gen-2", type_=models.DetectionType("detection"), time=now_dt,
                           source="console", track="T1",
                           object_=models.DetectionObject("drone"),
                           position=models.Position(lat=95.0, lon=36.2))
    r = call("post_events_api_v1_events_post", body=bad)  # the 422 a client must live with
    assert r.status_code == 422
    assert [(e.field, e.reason.split(":")[0]) for e in r.parsed.errors] == [
        ("position.lat", "out of range")]
    r = call("post_events_api_v1_events_post", body=[alert],
             client=generated.AuthenticatedClient(base_url=base, token="tk_nope", timeout=30))
    assert r.status_code == 401 and r.parsed.detail
    r = run("create_key_api_v1_keys_post", body=models.KeyIn(role="reader", name="gen-reader"))
    assert r.status_code == 201
    r = run("create_subscription_api_v1_subscriptions_post",
            body=models.SubscriptionIn(url="https://hooks.tocsin.invalid/hook",
                                       regions=[KHARKIV_OBLAST]))
    assert r.status_code == 201, r.content
    sub = r.parsed.additional_properties["id"]
    seqs = httpx.get(base + "/api/v1/alerts/active").json()["alerts"]
    cause = seqs[0]["cause_seq"] if seqs else 1
    cap = httpx.get(base + "/cap/feed.atom").text
    identifier = cap.split("/cap/tocsin-")[1].split(".xml")[0] if "/cap/tocsin-" in cap else "1"
    xml = httpx.get(f"{base}/cap/tocsin-{identifier}.xml").content
    file_type = importlib.import_module(generated.__name__ + ".types").File
    r = run("post_cap_api_v1_cap_post", body=file_type(payload=xml))
    assert r.status_code == 202 and r.parsed.regions is not None

    # a witness's cosignature over a head it never saw: refused, and the client lives with it
    cosign = ops["add_cosignature_api_v1_log_cosignatures_post"]
    body_type = inspect.signature(cosign.sync_detailed).parameters["body"].annotation
    model = getattr(models, str(body_type).split("|")[0].strip(), None)
    if model is not None and hasattr(model, "from_dict"):
        run("add_cosignature_api_v1_log_cosignatures_post", body=model.from_dict({}))
    else:
        done.add("add_cosignature_api_v1_log_cosignatures_post")
    r = run("put_sirens_api_v1_sirens_post",
            body=[models.SirenIn(id="gen-siren", lat=49.99, lon=36.23)])
    assert r.status_code == 201
    args: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
        "delete_siren_api_v1_sirens_siren_id_delete": (("gen-siren",), {}),
        "revoke_key_api_v1_keys_key_id_delete": (("gen-reader",), {}),
        "deliveries_api_v1_subscriptions_sub_id_deliveries_get": ((sub,), {}),
        "delete_subscription_api_v1_subscriptions_sub_id_delete": ((sub,), {}),
        "region_history_v1_regions_uid_alerts_period_json_get": ((22, "day_ago"), {}),
        "location_status_v1_iot_active_air_raid_alerts_uid_json_get": ((22,), {}),
        "location_status_v2_iot_active_air_raid_alerts_uid_json_get": ((22,), {}),
        "cap_message_cap_identifier_xml_get": ((f"tocsin-{identifier}",), {}),
        "cap_message_head": ((f"tocsin-{identifier}",), {}),
        "event_status_api_v1_cluster_event_get": ((), {"source": "console", "id": "gen-1"}),
        "consistency_api_v1_log_proof_consistency_get": ((), {"first": 1}),
        "entries_api_v1_log_entries_get": ((), {"start": 1, "end": 2}),
        "inclusion_api_v1_log_proof_inclusion_get": ((), {"index": 0}),
        "locate_api_v1_regions_locate_get": ((), {"lat": 49.99, "lon": 36.23}),
        "region_api_v1_regions_region_id_get": ((KHARKIV_OBLAST,), {}),
        "recent_api_v1_regions_region_id_recent_get": ((KHARKIV_OBLAST,), {}),
        "ua_region_alerts_api_v3_alerts_region_id_get": (("22",), {}),
        "test_siren_api_v1_sirens_siren_id_test_post": (("no-such-siren",), {}),
    }
    order = sorted(ops, key=lambda n: n.startswith(("delete_", "revoke_")))
    for name in order:
        if name in done or name in ENDLESS:
            continue
        a, kw = args.get(name, ((), {}))
        params = inspect.signature(ops[name].sync_detailed).parameters
        for pname, param in params.items():  # required query parameters not listed above
            if (param.kind is inspect.Parameter.KEYWORD_ONLY and pname not in kw
                    and pname not in ("client", "body")
                    and param.default is inspect.Parameter.empty):
                kw[pname] = 1 if "int" in str(param.annotation) else "x"
        run(name, *a, **kw)
    assert cause >= 1
    r = call("locate_api_v1_regions_locate_get", lat=95.0, lon=36.23)  # FastAPI's own check
    assert r.status_code == 422 and r.parsed.errors[0].field == "lat"
    assert set(ops) - done - ENDLESS == set()
