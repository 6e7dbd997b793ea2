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
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "0");
  svg.setAttribute("height", "0");
  svg.setAttribute("aria-hidden", "true");
  svg.style.position = "absolute";
  const defs = document.createElementNS(ns, "defs");
  for (const [type, color] of Object.entries(TYPE_COLOR)) {
    for (const [sev, strength] of Object.entries(SEV_STRENGTH)) {
      const p = document.createElementNS(ns, "pattern");
      p.setAttribute("id", `hatch-${type}-${sev}`);
      p.setAttribute("patternUnits", "userSpaceOnUse");
      p.setAttribute("width", "9");
      p.setAttribute("height", "9");
      p.setAttribute("patternTransform", "rotate(45)");
      const bg = document.createElementNS(ns, "rect");
      bg.setAttribute("width", "9");
      bg.setAttribute("height", "9");
      bg.setAttribute("fill", CALM);
      const stripe = document.createElementNS(ns, "rect");
      stripe.setAttribute("width", "4.5");
      stripe.setAttribute("height", "9");
      stripe.setAttribute("fill", mix(color, strength));
      p.append(bg, stripe);
      defs.append(p);
    }
  }
  svg.append(defs);
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

/** Restyle the shown regions whose state changed since they were last drawn. */
export function repaint() {
  if (!shown) return;
  const agg = rollup();
  const depth = state.levels.indexOf(shown);
  const front = [];
  let changed = false;
  layers.get(shown).eachLayer((lyr) => {
    const id = lyr.regionId;
    const rs = regionState(agg, id);
    const sel = selection.has(id);
    const sig = `${rs.state}|${rs.type}|${rs.coverage}|${rs.threat}|${sel}`;
    if (rs.threat || sel || rs.state === "imminent") front.push([sel ? 2 : rs.threat ? 1 : 0, lyr]);
    if (drawn.get(id) === sig) return;
    drawn.set(id, sig);
    changed = true;
    const style = baseStyle(depth);
    if (rs.state !== "none") {
      style.fillColor = rs.coverage === "partial"
        ? `url(#hatch-${rs.type}-${rs.state})`
        : mix(TYPE_COLOR[rs.type], SEV_STRENGTH[rs.state]);
    }
    // imminent: a dark border too, unless a threat level or the selection needs the border
    if (rs.state === "imminent") Object.assign(style, { color: "#5a0000", weight: Math.max(style.weight, 1.6) });
    if (rs.threat) Object.assign(style, THREAT_STYLE[rs.threat]);
    if (sel) Object.assign(style, SELECTED);
    lyr.setStyle(style);
    const el = lyr.getElement();
    if (el) {
      el.dataset.region = id;
      el.dataset.state = rs.state;
      el.dataset.alertType = rs.type || "";
      el.dataset.coverage = rs.coverage;
      el.dataset.threat = String(rs.threat);
      el.dataset.selected = String(sel);
    }
  });
  if (!changed) return;
  // thick outlines (imminent, levels, selection) must not hide under their neighbours' borders
  front.sort((a, b) => a[0] - b[0]);
  for (const [, lyr] of front) lyr.bringToFront();
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
