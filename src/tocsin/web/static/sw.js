// The service worker: keeps what the page needs to open — the shell, the vendored libraries,
// the region layers and labels, the server's info — so the page opens and draws the map when
// the server is briefly unreachable, and says so (an offline banner).
//
// Network first, always: while the server answers, every answer is fresh and refreshes the
// copy kept here; only when the network fails is the copy served, marked with the header
// `X-Tocsin-Offline: 1` so the page knows it is looking at the past. Live state (alerts,
// levels, tracks, the stream) is never kept: a stale alert shown as current would be worse
// than none. Served at /sw.js so its scope is the whole page.

const CACHE = "tocsin-v1";
const SHELL = [
  "/",
  "/manifest.webmanifest",
  "/static/favicon.svg",
  "/static/icons/tocsin-192.png",
  "/static/css/app.css",
  "/static/vendor/leaflet/leaflet.css",
  "/static/vendor/leaflet/leaflet.js",
  "/static/vendor/leaflet/images/layers.png",
  "/static/vendor/leaflet/images/layers-2x.png",
  "/static/vendor/leaflet/images/marker-icon.png",
  "/static/data/labels.json",
  "/static/js/api.js",
  "/static/js/console.js",
  "/static/js/format.js",
  "/static/js/here.js",
  "/static/js/i18n.js",
  "/static/js/labels.js",
  "/static/js/main.js",
  "/static/js/map.js",
  "/static/js/offline.js",
  "/static/js/panel.js",
  "/static/js/sirens.js",
  "/static/js/state.js",
  "/static/js/stream.js",
];
// kept as they pass by (the page also stores them once it has drawn the map)
const KEPT_API = ["/api/v1/info", "/api/v1/map/regions"];

self.addEventListener("install", (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL.map((u) => new Request(u, { cache: "no-cache" })))));
  self.skipWaiting();
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

function keyOf(url) {
  // the page is one document whatever its query (?lang=en): keep it once
  return url.pathname === "/" ? "/" : url.pathname + url.search;
}

function kept(url) {
  return url.pathname === "/" || url.pathname === "/manifest.webmanifest" ||
    url.pathname.startsWith("/static/") || KEPT_API.includes(url.pathname);
}

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const res = await fetch(request);
    if (res.ok && res.status === 200) await cache.put(key, res.clone());
    return res;
  } catch (err) {
    const copy = await cache.match(key);
    if (!copy) throw err;
    const headers = new Headers(copy.headers);
    headers.set("X-Tocsin-Offline", "1");
    return new Response(copy.body, { status: 200, headers });
  }
}

self.addEventListener("fetch", (ev) => {
  const req = ev.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !kept(url)) return;
  ev.respondWith(networkFirst(req, keyOf(url)));
});
