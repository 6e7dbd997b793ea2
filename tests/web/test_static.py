"""The dashboard's files and map endpoints, in-process (no browser): every asset index.html
names is served, nothing points at another host, and the region layers are compact."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tocsin.api import create_app
from tocsin.config import Settings
from tocsin.web import STATIC_DIR

pytestmark = pytest.mark.anyio

Client = httpx.AsyncClient


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    """The app (lifespan included) on a fresh data dir, driven in-process."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


def referenced(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#]+)"', html)


async def test_index_and_every_asset_it_names_are_served(client: Client) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assets = referenced(r.text)
    assert "/static/vendor/leaflet/leaflet.js" in assets
    assert "/static/js/main.js" in assets
    for url in assets:
        assert (await client.get(url)).status_code == 200, url


async def test_index_names_no_other_host(client: Client) -> None:
    html = (await client.get("/")).text
    assert not re.search(r"https?://", html), "index.html must not point at any other host"
    assert not re.search(r'(?:src|href)="//', html)


async def test_modules_and_stylesheets_resolve(client: Client) -> None:
    """Every JS module import and CSS url() the page loads is served too."""
    for js in sorted((STATIC_DIR / "js").glob("*.js")):
        base = f"/static/js/{js.name}"
        assert (await client.get(base)).status_code == 200
        for target in re.findall(r'from "(\.[^"]+)"', js.read_text(encoding="utf-8")):
            assert (await client.get(urljoin(base, target))).status_code == 200, (js.name, target)
    for css in ("/static/css/app.css", "/static/vendor/leaflet/leaflet.css"):
        text = (await client.get(css)).text
        for target in re.findall(r"url\(([^)#]+)\)", text):
            target = target.strip("'\"")
            if target.startswith("data:"):
                continue
            assert not target.startswith(("http:", "https:", "//")), (css, target)
            assert (await client.get(urljoin(css, target))).status_code == 200, (css, target)


def test_no_script_fetches_another_host() -> None:
    for path in (STATIC_DIR / "js").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(fetch|EventSource)\(\s*[\"'`]https?:", text), path.name


def test_vendored_leaflet_is_complete() -> None:
    vendor = STATIC_DIR / "vendor" / "leaflet"
    for name in ("leaflet.js", "leaflet.css", "LICENSE", "images/layers.png",
                 "images/marker-icon.png", "images/marker-shadow.png"):
        assert (vendor / name).is_file(), name
    assert "Leaflet 1.9.4" in (vendor / "leaflet.js").read_text(encoding="utf-8")[:400]


async def test_info(client: Client) -> None:
    info = (await client.get("/api/v1/info")).json()
    assert info["mode"] == "actual" and info["demo"] is False
    assert info["region_set"] == "ua-hromadas"
    assert [lv["level"] for lv in info["levels"]] == ["oblast", "raion", "hromada"]
    assert [lv["count"] for lv in info["levels"]] == [27, 139, 1769]
    assert info["log_size"] >= 0 and len(info["bounds"]) == 4


def test_demo_settings_say_exercise(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", demo=True))
    # no lifespan here: the scenario does not play, but the mode is already forced
    assert app.state.settings.mode == "exercise"
    assert app.state.service.settings.mode == "exercise"


@pytest.mark.parametrize(("level", "count", "max_gz"), [
    ("oblast", 27, 60_000), ("raion", 139, 80_000), ("hromada", 1769, 400_000),
])
async def test_region_layers_are_compact_geojson(
    client: Client, level: str, count: int, max_gz: int
) -> None:
    r = await client.get("/api/v1/map/regions", params={"level": level},
                         headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert int(r.headers["content-length"]) <= max_gz  # what travels, gzipped
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == count
    f = fc["features"][0]
    props = f["properties"]
    assert set(props) >= {"id", "parent", "names", "alerts_uid", "leaves", "level"}
    assert props["level"] == level and props["names"]["uk"] and props["names"]["en"]
    assert f["geometry"]["type"] in {"Polygon", "MultiPolygon"}
    etag = r.headers["etag"]
    again = await client.get("/api/v1/map/regions", params={"level": level},
                             headers={"If-None-Match": etag})
    assert again.status_code == 304


async def test_region_layer_without_gzip_and_unknown_level(client: Client) -> None:
    r = await client.get("/api/v1/map/regions", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and "content-encoding" not in r.headers
    assert len(r.json()["features"]) == 27  # the coarsest level by default
    assert gzip.compress(r.content)  # plain JSON bytes
    bad = await client.get("/api/v1/map/regions", params={"level": "village"})
    assert bad.status_code == 404 and "oblast" in bad.json()["detail"]


async def test_incidents_and_whoami(client: Client) -> None:
    assert (await client.get("/api/v1/incidents")).json() == {"incidents": []}
    assert (await client.get("/api/v1/whoami")).status_code == 401
    key, _ = client.app.state.service.admin.create_key("operator", "duty-test")  # type: ignore[attr-defined]
    me = (await client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})).json()
    assert me["name"] == "duty-test" and me["role"] == "operator"


def _exterior_rings(geometry: dict[str, object]) -> list[list[list[float]]]:
    coords = geometry["coordinates"]
    polygons = [coords] if geometry["type"] == "Polygon" else coords
    return [polygon[0] for polygon in polygons]  # type: ignore[index, union-attr]


def _signed_area(ring: list[list[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))


@pytest.mark.parametrize("level", ["oblast", "raion", "hromada"])
async def test_served_regions_have_geometry_and_counter_clockwise_exteriors(
    client: Client, level: str
) -> None:
    fc = (await client.get("/api/v1/map/regions", params={"level": level})).json()
    for feature in fc["features"]:
        assert feature["geometry"] is not None, feature["id"]
        # RFC 7946 section 3.1.6: exterior rings counter-clockwise (positive signed area)
        assert all(_signed_area(r) > 0 for r in _exterior_rings(feature["geometry"])), feature["id"]
    one = fc["features"][-1]["id"]
    region = (await client.get(f"/api/v1/regions/{one}")).json()
    assert all(_signed_area(r) > 0 for r in _exterior_rings(region["geometry"]))


async def test_service_worker_and_manifest_are_served_from_the_root(client: Client) -> None:
    sw = await client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    m = await client.get("/manifest.webmanifest")
    assert m.status_code == 200
    assert m.headers["content-type"].startswith("application/manifest+json")
    manifest = m.json()
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert (await client.get(icon["src"])).status_code == 200, icon["src"]
    assert any(i["sizes"] == "512x512" for i in manifest["icons"])


async def test_service_worker_keeps_every_file_the_page_loads(client: Client) -> None:
    """sw.js lists its shell by hand: every module and stylesheet of the page must be in it,
    or the page would open offline with a piece missing."""
    sw = (await client.get("/sw.js")).text
    shell = set(re.findall(r'"(/[^"]*)"', sw.split("const KEPT_API")[0]))
    for path in sorted((STATIC_DIR / "js").glob("*.js")):
        assert f"/static/js/{path.name}" in shell, path.name
    for url in referenced((await client.get("/")).text):
        # the report link is a live page of its own, not part of the map
        assert url in shell or url.startswith("/api/"), url
    for url in shell:
        assert (await client.get(url)).status_code == 200, url
