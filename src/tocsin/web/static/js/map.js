// The map: region layers drawn from the server's GeoJSON (no tile server: the page must work
// offline), coloured by rolled-up alert state, with tracks and incident markers on top.

/* global L */
import { state, rollup, regionState, markedIncidents } from "./state.js";
import { t, has, regionName } from "./i18n.js";
import { now } from "./api.js";
import { fmtEta } from "./format.js";

export const TYPE_COLOR = {
  air_raid: "#d7191c",
  artillery_shelling: "#f07c1b",
  urban_fights: "#7b3294",
  chemical: "#1a9641",
  nuclear: "#d9b600",
};
// Urgency is shown as how strongly the type colour is laid over the calm fill; solid colours
// (not opacity) keep borders and hatching crisp whatever lies underneath.
const SEV_STRENGTH = { pre_alert: 0.35, alert: 0.7, imminent: 1.0 };
const CALM = "#f4f6f8";
export const THREAT_STYLE = {
  1: { color: "#c99a00", weight: 2.2, dashArray: "5 4" },
  2: { color: "#e0600b", weight: 2.8, dashArray: "9 4" },
  3: { color: "#6d0014", weight: 3.6, dashArray: null },
};
const BORDER = [
  { color: "#5c6773", weight: 1.2 },
  { color: "#7b8794", weight: 0.8 },
  { color: "#9aa5b1", weight: 0.5 },
];
const SELECTED = { color: "#0b5bd3", weight: 3.6, dashArray: null };
// Auto level by zoom: the coarsest level below 7, the next one from 7, the next from 8, ...
const AUTO_FROM_ZOOM = [-Infinity, 7, 8, 9, 10];

let map;
let onClick = () => {};
const layers = new Map(); // level -> L.GeoJSON (built once, added when shown)
const byId = new Map(); // region id -> its polygon layer
const drawn = new Map(); // region id -> signature of the style last applied
let shown = null; // level on the map
let outline = null; // the coarsest level's borders over a finer level
let forced = null; // a level chosen by hand, or null for auto
let selection = new Set();
let trackLayer;
let incidentLayer;
let levelControl;

export function mix(hex, strength) {
  const a = parseInt(CALM.slice(1), 16);
  const b = parseInt(hex.slice(1), 16);
  const ch = (v, s) => (v >> s) & 255;
  const m = (s) => Math.round(ch(a, s) + (ch(b, s) - ch(a, s)) * strength);
  return `#${((1 << 24) | (m(16) << 16) | (m(8) << 8) | m(0)).toString(16).slice(1)}`;
}

export function initMap(el, { bounds, onRegionClick }) {
  onClick = onRegionClick;
  map = L.map(el, {
    zoomControl: true,
    minZoom: 4,
    maxZoom: 13,
    zoomSnap: 0.25,
    preferCanvas: false, // SVG: each region is an element the tests and patterns can reach
    attributionControl: true,
  });
  map.attributionControl.addAttribution("Boundaries: OCHA / SSPE via HDX, CC BY-IGO");
  const [w, s, e, n] = bounds;
  const box = L.latLngBounds([s, w], [n, e]);
  map.fitBounds(box, { padding: [8, 8] });
  map.setMaxBounds(box.pad(0.6));
  addPatterns();
  trackLayer = L.layerGroup().addTo(map);
  incidentLayer = L.layerGroup().addTo(map);
  map.on("zoomend", () => {
    showLevel();
    tickTracks();
  });
  return map;
}

// Hatching for "part of this region is under alert": stripes of the alert colour on the calm
// fill, one pattern per type and urgency. They live in a zero-size SVG of their own: ids are
// document-wide, so every path of Leaflet's renderer can use them.
function addPatterns() {
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, ...children) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    e.append(...children);
    return e;
  };
  const defs = el("defs", {});
  for (const [type, color] of Object.entries(TYPE_COLOR)) {
    for (const [sev, strength] of Object.entries(SEV_STRENGTH)) {
      defs.append(el("pattern", { id: `hatch-${type}-${sev}`, patternUnits: "userSpaceOnUse",
                                  width: 9, height: 9, patternTransform: "rotate(45)" },
        el("rect", { width: 9, height: 9, fill: CALM }),
        el("rect", { width: 4.5, height: 9, fill: mix(color, strength) })));
    }
    // a pre-alert over the whole region: dots of the type's colour, so it is told from an
    // alert by pattern, not only by a paler shade
    defs.append(el("pattern", { id: `dots-${type}`, patternUnits: "userSpaceOnUse", width: 8,
                                height: 8 },
      el("rect", { width: 8, height: 8, fill: mix(color, SEV_STRENGTH.pre_alert) }),
      el("circle", { cx: 4, cy: 4, r: 1.6, fill: mix(color, 0.9) })));
  }
  const svg = el("svg", { width: 0, height: 0, "aria-hidden": "true" }, defs);
  svg.style.position = "absolute";
  document.body.append(svg);
}

/** Build the layer of one level from its FeatureCollection (not shown yet). */
export function addLevel(level, fc) {
  const depth = state.levels.indexOf(level);
  const layer = L.geoJSON(fc, {
    style: () => baseStyle(depth),
    onEachFeature: (feature, lyr) => {
      const id = feature.properties.id;
      byId.set(id, lyr);
      lyr.regionId = id;
      lyr.on("click", () => onClick(id));
      lyr.bindTooltip(() => tooltip(id), { sticky: true, direction: "top", className: "region-tip" });
    },
  });
  layers.set(level, layer);
}

function baseStyle(depth) {
  const b = BORDER[Math.min(depth, BORDER.length - 1)];
  return { color: b.color, weight: b.weight, opacity: 1, fillColor: CALM, fillOpacity: 1, dashArray: null };
}

function autoLevel() {
  const z = map.getZoom();
  let i = 0;
  while (i + 1 < AUTO_FROM_ZOOM.length && z >= AUTO_FROM_ZOOM[i + 1]) i++;
  return state.levels[Math.min(i, state.levels.length - 1)];
}

/** Put the right level on the map (the one chosen by hand, else the one for this zoom). */
export function showLevel(level = forced || autoLevel()) {
  if (!layers.has(level)) return;
  if (level !== shown) {
    if (shown) map.removeLayer(layers.get(shown));
    if (outline) map.removeLayer(outline);
    outline = null;
    drawn.clear();
    layers.get(level).addTo(map);
    shown = level;
    const coarsest = state.levels[0];
    if (level !== coarsest && layers.has(coarsest)) {
      // the coarsest borders stay visible over finer levels, for orientation
      outline = L.geoJSON(layers.get(coarsest).toGeoJSON(), {
        style: { color: "#3d4852", weight: 1.6, fill: false, opacity: 0.9 },
        interactive: false,
      }).addTo(map);
    }
    repaint();
  }
  if (levelControl) levelControl.update();
}

export function setForcedLevel(level) {
  forced = level;
  showLevel();
}

export function shownLevel() {
  return shown;
}

// A salvo can change every hromada at once. Each distinct look (level, state, type, coverage,
// threat level, selection) is built once and kept here, and a polygon gets only the SVG
// attributes that differ from its last look (usually just `fill`), not Leaflet's full restyle
// of ten attributes: fewer DOM writes keep the frame that shows the salvo short.
const looks = new Map();

function lookOf(depth, rs, sel) {
  const key = `${depth}|${rs.state}|${rs.type}|${rs.coverage}|${rs.threat}|${sel}`;
  let style = looks.get(key);
  if (style) return style;
  style = baseStyle(depth);
  if (rs.state !== "none") {
    // severity is told by pattern as well as strength of colour: dots for a pre-alert,
    // stripes for part of a region, solid for the whole region under alert
    style.fillColor = rs.coverage === "partial"
      ? `url(#hatch-${rs.type}-${rs.state})`
      : rs.state === "pre_alert" ? `url(#dots-${rs.type})` : mix(TYPE_COLOR[rs.type], SEV_STRENGTH[rs.state]);
  }
  // imminent: a dark border too, unless a threat level or the selection needs the border
  if (rs.state === "imminent") Object.assign(style, { color: "#5a0000", weight: Math.max(style.weight, 1.6) });
  if (rs.threat) Object.assign(style, THREAT_STYLE[rs.threat]);
  if (sel) Object.assign(style, SELECTED);
  style.key = key;
  looks.set(key, Object.freeze(style));
  return style;
}

const ATTRS = [["fillColor", "fill"], ["color", "stroke"], ["weight", "stroke-width"], ["dashArray", "stroke-dasharray"]];

function applyLook(lyr, style) {
  const el = lyr.getElement();
  if (!el) {
    lyr.setStyle(style);
    return;
  }
  const prev = lyr.options;
  for (const [opt, attr] of ATTRS) {
    if (prev[opt] === style[opt]) continue;
    if (style[opt] === null || style[opt] === undefined) el.removeAttribute(attr);
    else el.setAttribute(attr, style[opt]);
  }
  // Leaflet reads its options when it redraws a path (zoom, re-adding the layer)
  Object.assign(prev, style);
}

function setData(el, key, value) {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}

const FRONT_RANK = (rs, sel) => (sel ? 3 : rs.threat ? 2 : rs.state === "imminent" ? 1 : 0);

/** Restyle the shown regions whose state changed since they were last drawn. */
export function repaint() {
  if (!shown) return;
  const agg = rollup();
  const depth = state.levels.indexOf(shown);
  const front = [];
  let lowest = Infinity; // the lowest rank among polygons that just came to the front
  layers.get(shown).eachLayer((lyr) => {
    const id = lyr.regionId;
    const rs = regionState(agg, id);
    const sel = selection.has(id);
    const look = lookOf(depth, rs, sel);
    const rank = FRONT_RANK(rs, sel);
    const fresh = drawn.get(id) !== look.key;
    if (rank) front.push([rank, lyr, fresh]);
    if (!fresh) return;
    drawn.set(id, look.key);
    if (rank) lowest = Math.min(lowest, rank);
    applyLook(lyr, look);
    const el = lyr.getElement();
    if (el) {
      setData(el, "region", id);
      setData(el, "state", rs.state);
      setData(el, "alertType", rs.type || "");
      setData(el, "coverage", rs.coverage);
      setData(el, "threat", String(rs.threat));
      setData(el, "selected", String(sel));
    }
  });
  if (lowest === Infinity) return;
  // Thick outlines (imminent, levels, selection) must not hide under their neighbours'
  // borders. Only what just came forward moves, and what outranks it is raised again above
  // it; polygons of one rank may lie in any order among themselves.
  front.sort((a, b) => a[0] - b[0]);
  for (const [rank, lyr, fresh] of front) if (rank > lowest || fresh) lyr.bringToFront();
  if (outline) outline.bringToFront();
}

export function setSelection(ids) {
  selection = new Set(ids);
  drawn.clear();
  repaint();
}

function tooltip(id) {
  const region = state.regions.get(id);
  const rs = regionState(rollup(), id);
  const lvl = has(`level.${region.level}`) ? t(`level.${region.level}`) : region.level;
  const lines = [`<strong>${esc(regionName(region))}</strong> <span class="muted">${esc(lvl)}</span>`];
  if (rs.state === "none") lines.push(esc(t("region.calm")));
  else {
    let line = `${esc(t(`type.${rs.type}`))} — ${esc(t(`sev.${rs.state}`))}`;
    if (rs.total > 1) line += ` · ${esc(t("region.alerted", { n: rs.alerted, m: rs.total }))}`;
    lines.push(line);
  }
  if (rs.threat) lines.push(esc(t("region.level", { level: t(`threat.${rs.threat}`) })));
  return lines.join("<br>");
}

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function regionBounds(id) {
  const lyr = byId.get(id);
  return lyr ? lyr.getBounds() : null;
}

export function flyToRegion(id) {
  const b = regionBounds(id);
  if (b && b.isValid()) map.fitBounds(b, { padding: [30, 30], maxZoom: 10 });
}

export function flyTo(lat, lon, zoom = 9) {
  map.setView([lat, lon], Math.max(map.getZoom(), zoom));
}

/** Tracks with their footprints (the cone or disc the engine warns for) and a live ETA. */
export function drawTracks() {
  trackLayer.clearLayers();
  for (const f of state.tracks.features) {
    if (f.geometry) {
      L.geoJSON(f.geometry, {
        style: { color: "#8b0000", weight: 1.5, dashArray: "6 4", fillColor: "#ff3b30", fillOpacity: 0.1 },
        pointToLayer: (_f, ll) => L.circleMarker(ll, { radius: 3 }),
        interactive: false,
      }).addTo(trackLayer);
    }
    const p = f.properties;
    const m = L.circleMarker([p.position.lat, p.position.lon], {
      radius: 6, color: "#fff", weight: 2, fillColor: "#111", fillOpacity: 1,
    }).addTo(trackLayer);
    m.trackProps = p;
    m.bindTooltip(trackLabel(p), { permanent: true, direction: "right", className: "track-label", offset: [8, 0] });
  }
}

function trackLabel(p) {
  // zoomed out, tracks bunch up: the id alone keeps their labels from covering each other
  if (map.getZoom() < 7) return esc(p.track);
  const what = p.weapon || t(`obj.${p.object}`);
  const eta = p.eta_s === null || p.eta_s === undefined
    ? ""
    : ` · ${fmtEta(p.eta_s - (now() - state.tracksAt) / 1000)}`;
  return `${esc(p.track)} · ${esc(what)}${eta}`;
}

/** Once a second: track labels count down their ETA. */
export function tickTracks() {
  trackLayer.eachLayer((lyr) => {
    if (lyr.trackProps) lyr.setTooltipContent(trackLabel(lyr.trackProps));
  });
}

export function incidentPosition(inc) {
  if (inc.position && typeof inc.position.lat === "number") return [inc.position.lat, inc.position.lon];
  const b = regionBounds(inc.region);
  return b && b.isValid() ? [b.getCenter().lat, b.getCenter().lng] : null;
}

/** Red marks for silent impacts and siren faults. */
export function drawIncidents() {
  incidentLayer.clearLayers();
  for (const inc of markedIncidents()) {
    const pos = incidentPosition(inc);
    if (!pos) continue;
    const silent = inc.type === "silent_impact";
    const icon = L.divIcon({
      className: `incident-icon ${silent ? "silent" : "siren"}`,
      html: silent ? "!" : "S",
      iconSize: [24, 24],
    });
    const region = state.regions.get(inc.region);
    L.marker(pos, { icon, zIndexOffset: 1000, keyboard: false })
      .bindTooltip(`<strong>${esc(t(`incidents.${inc.type}`))}</strong><br>${esc(regionName(region))}`)
      .addTo(incidentLayer);
  }
}

/** Buttons to pick the level by hand (Auto follows the zoom). */
export function addLevelControl() {
  const Ctl = L.Control.extend({
    options: { position: "topright" },
    onAdd() {
      const div = L.DomUtil.create("div", "leaflet-bar level-control");
      L.DomEvent.disableClickPropagation(div);
      this.div = div;
      this.render();
      return div;
    },
    render() {
      this.div.replaceChildren();
      for (const level of [null, ...state.levels]) {
        const b = L.DomUtil.create("button", "", this.div);
        b.type = "button";
        b.dataset.level = level || "auto";
        b.textContent = level === null ? t("layer.auto") : has(`lvl.${level}`) ? t(`lvl.${level}`) : level;
        b.onclick = () => setForcedLevel(level);
      }
      this.update();
    },
    update() {
      for (const b of this.div.querySelectorAll("button")) {
        const isAuto = b.dataset.level === "auto";
        b.classList.toggle("on", isAuto ? forced === null : forced === b.dataset.level);
        b.classList.toggle("shown", b.dataset.level === shown);
      }
    },
  });
  levelControl = new Ctl();
  levelControl.addTo(map);
}

export function relabel() {
  if (levelControl) levelControl.render();
  drawIncidents();
  tickTracks();
}

export function getMap() {
  return map;
}
