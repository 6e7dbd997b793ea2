// The siren layer for operators: every registered siren on the map with its state, its last
// acknowledgement and its fault, read from GET /api/v1/sirens when the layer is turned on, again
// on each siren fault the stream brings, and every 15 s while shown. The state is told by a
// glyph and in words, never by colour alone.

/* global L */
import { api } from "./api.js";
import { t, has, regionName } from "./i18n.js";
import { state } from "./state.js";
import { fmtTime } from "./format.js";

const $ = (id) => document.getElementById(id);
const GLYPH = { ok: "✓", fault: "!", offline: "×", unknown: "?" };
const SLOT = "tocsin.sirens.shown";
let map;
let layer;
let timer = null;
let last = null; // the last answer, or null
let failed = false;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function initSirens(leafletMap) {
  map = leafletMap;
  layer = L.layerGroup();
  const box = $("sirens-show");
  box.checked = localStorage.getItem(SLOT) === "1";
  box.onchange = () => {
    localStorage.setItem(SLOT, box.checked ? "1" : "0");
    show(box.checked);
  };
  show(box.checked);
}

function show(on) {
  clearInterval(timer);
  timer = null;
  if (on) {
    layer.addTo(map);
    refresh();
    timer = setInterval(refresh, 15000);
  } else {
    layer.remove();
  }
  render();
}

let soon = null;
/** Read the sirens again within a second (a burst of siren faults makes one read). */
export function refreshSoon() {
  if (soon) return;
  soon = setTimeout(() => {
    soon = null;
    refresh();
  }, 1000);
}

/** Read the sirens again, if the layer is on. */
export async function refresh() {
  if (!$("sirens-show").checked) return;
  try {
    last = await api("/api/v1/sirens");
    failed = false;
  } catch {
    failed = true;
  }
  draw();
  render();
}

function statusWord(s) {
  return has(`siren.${s}`) ? t(`siren.${s}`) : s;
}

/** The latest siren_fault transition of a siren (the stream and /incidents bring them). */
function lastReport(id) {
  return state.incidents.find((i) => i.type === "siren_fault" && i.siren === id) || null;
}

function describe(s) {
  // without an MQTT gateway on this node the API has the logged state only: the reason and
  // time come from the siren's latest fault report
  const report = s.status !== "ok" ? lastReport(s.id) : null;
  const reason = s.reason || (report && report.reason) || "";
  const lines = [`<strong>${esc(s.name)}</strong> <span class="muted">${esc(s.id)}</span>`,
    `${esc(t("sirens.state"))}: ${esc(statusWord(s.status))}${reason ? ` — ${esc(reason)}` : ""}`];
  if (report) lines.push(`${esc(t("sirens.reported"))}: ${esc(fmtTime(report.time))}`);
  lines.push(`${esc(t("sirens.ack"))}: ${s.last_ack ? esc(fmtTime(s.last_ack)) : "—"}`);
  if (s.command) lines.push(`${esc(t("sirens.command"))}: ${esc(s.command)} (${esc(s.pattern || "")})`);
  const region = state.regions.get(s.region);
  if (region) lines.push(esc(regionName(region)));
  return lines.join("<br>");
}

function draw() {
  layer.clearLayers();
  if (!last) return;
  for (const s of last.sirens) {
    const icon = L.divIcon({
      className: `siren-mark ${esc(s.status)}`,
      html: `<span aria-hidden="true">${GLYPH[s.status] || "?"}</span>`,
      iconSize: [20, 20],
    });
    const m = L.marker([s.lat, s.lon], { icon, keyboard: false, zIndexOffset: 1500 })
      .bindTooltip(describe(s), { direction: "top" })
      .addTo(layer);
    const el = m.getElement();
    if (el) {
      el.dataset.siren = s.id;
      el.dataset.status = s.status;
    }
  }
}

/** The operator tab's summary: counts by state, then every siren not known to be ok. */
export function render() {
  const body = $("sirens-body");
  if (!body) return;
  if (!$("sirens-show").checked) {
    body.innerHTML = "";
    return;
  }
  if (failed) {
    body.innerHTML = `<p class="error">${esc(t("sirens.failed"))}</p>`;
    return;
  }
  if (!last) {
    body.innerHTML = `<p class="muted">…</p>`;
    return;
  }
  const count = {};
  for (const s of last.sirens) count[s.status] = (count[s.status] || 0) + 1;
  const summary = Object.entries(count)
    .map(([st, n]) => `<li class="siren-count ${esc(st)}"><span class="siren-mark ${esc(st)}" aria-hidden="true">${GLYPH[st] || "?"}</span> ${esc(statusWord(st))}: ${n}</li>`)
    .join("");
  const bad = last.sirens.filter((s) => s.status !== "ok").slice(0, 50)
    .map((s) => `<li data-siren="${esc(s.id)}" data-status="${esc(s.status)}"><span class="siren-mark ${esc(s.status)}" aria-hidden="true">${GLYPH[s.status] || "?"}</span>
      <div class="grow">${describe(s)}</div></li>`)
    .join("");
  body.innerHTML = `<p class="muted">${esc(t("sirens.mqtt", { m: t(`sirens.mqtt.${last.mqtt}`) }))}</p>
    ${last.sirens.length ? `<ul class="plain siren-counts">${summary}</ul>` : `<p class="muted">${esc(t("sirens.none"))}</p>`}
    ${bad ? `<ul class="list sirens-bad">${bad}</ul>` : ""}`;
}
