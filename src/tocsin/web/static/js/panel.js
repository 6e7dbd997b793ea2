// The side panel's read-only tabs: active alerts, tracks, incidents, one region's history and
// the public record. Times that run (durations, ETAs) are refreshed by `tick()` each second.

import { api, now } from "./api.js";
import { state, chain, rootOf, rollup, regionState, etaNow, SEVERITY_RANK } from "./state.js";
import { t, has, regionName, locale } from "./i18n.js";
import { fmtElapsed, fmtEta, fmtTime } from "./format.js";
import { TYPE_COLOR, esc, flyToRegion, flyTo, incidentPosition } from "./map.js";

const $ = (id) => document.getElementById(id);
let currentRegion = null;
let regionHistory = [];
let regionRecent = null; // the last answer of /regions/{id}/recent
let historyTimer = null;

// --- alerts --------------------------------------------------------------------------------

function trackWeapons() {
  const out = new Map();
  for (const f of state.tracks.features) out.set(f.properties.track, f.properties.weapon || f.properties.object);
  return out;
}

/** "track K2 (kh-101)", "operator duty-south", "CAP sender". */
export function fmtCause(cause, weapons = trackWeapons()) {
  if (cause.startsWith("operator:")) return t("cause.operator", { name: cause.slice(9) });
  if (cause.startsWith("cap:")) return t("cause.cap", { source: cause.slice(4) });
  if (cause.startsWith("siren:")) return t("cause.siren", { id: cause.slice(6) });
  const w = weapons.get(cause);
  return t("cause.track", { id: cause }) + (w ? ` (${w})` : "");
}

/** Causes in few words: many tracks become "6 tracks: shahed-136 ×6 (S1, S2, S3…)". */
export function fmtCauses(causes, weapons = trackWeapons()) {
  const tracks = causes.filter((c) => !/^(operator|cap|siren):/.test(c));
  const others = causes.filter((c) => /^(operator|cap|siren):/.test(c)).map((c) => fmtCause(c, weapons));
  if (tracks.length <= 3) return [...tracks.map((c) => fmtCause(c, weapons)), ...others].join(", ");
  const count = new Map();
  for (const id of tracks) {
    const w = weapons.get(id) || "?";
    count.set(w, (count.get(w) || 0) + 1);
  }
  const kinds = [...count].map(([w, n]) => `${w} ×${n}`).join(", ");
  const ids = `${tracks.slice(0, 3).join(", ")}…`;
  return [t("cause.tracks", { n: tracks.length, kinds, ids }), ...others].join(", ");
}

/** Alerts grouped by top-level region and type: one line per oblast and kind of alert. */
function groups() {
  const by = new Map();
  for (const a of state.alerts.values()) {
    const root = rootOf(a.region);
    const rid = root ? root.id : a.region;
    const key = `${rid}|${a.alert_type}`;
    let g = by.get(key);
    if (!g) {
      g = { root: rid, type: a.alert_type, alerts: [], severity: a.severity, since: Infinity, causes: new Set(), eta: null };
      by.set(key, g);
    }
    g.alerts.push(a);
    if (SEVERITY_RANK[a.severity] > SEVERITY_RANK[g.severity]) g.severity = a.severity;
    g.since = Math.min(g.since, Date.parse(a.started_at));
    for (const c of a.causes || []) g.causes.add(c);
    const e = etaNow(a);
    if (e !== null && (g.eta === null || e < g.eta.value)) g.eta = { value: e, alert: a };
  }
  return [...by.values()].sort(
    (a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || a.since - b.since,
  );
}

const openGroups = new Set(); // "root|type" of the groups whose hromadas are shown

function leafRows(alerts) {
  return alerts
    .map((a) => `<li>${esc(regionName(state.regions.get(a.region)))} — ${esc(t(`sev.${a.severity}`))}</li>`)
    .join("");
}

function onGroupToggle(ev) {
  const details = ev.target;
  if (!(details instanceof HTMLDetailsElement) || !details.dataset.key) return;
  const key = details.dataset.key;
  const ul = details.querySelector("ul.leaves");
  if (details.open) {
    openGroups.add(key);
    const [root, type] = key.split("|");
    const alerts = [...state.alerts.values()].filter((a) => a.alert_type === type && (rootOf(a.region) || {}).id === root);
    ul.innerHTML = leafRows(alerts);
  } else {
    openGroups.delete(key);
    ul.replaceChildren();
  }
}

export function renderAlerts() {
  const list = $("alerts-list");
  const gs = groups();
  $("count-alerts").textContent = gs.length ? String(gs.length) : "";
  const leaves = new Set([...state.alerts.values()].map((a) => a.region));
  $("summary").textContent = leaves.size ? t("summary.some", { n: leaves.size }) : t("summary.none");
  $("summary").classList.toggle("active", leaves.size > 0);
  if (!gs.length) {
    list.innerHTML = `<li class="empty">${esc(t("alerts.none"))}</li>`;
    return;
  }
  const weapons = trackWeapons();
  list.innerHTML = gs
    .map((g) => {
      const root = state.regions.get(g.root);
      const total = root ? root.leaves : 1;
      const part = g.alerts.length >= total ? t("alerts.whole") : t("alerts.part", { n: g.alerts.length, m: total });
      const holding = g.alerts.every((a) => a.holding) ? ` · ${esc(t("alerts.holding"))}` : "";
      const eta = g.eta ? ` · <span data-eta-region="${esc(g.eta.alert.region)}" data-eta-type="${esc(g.type)}">${esc(fmtEta(g.eta.value))}</span>` : "";
      const causes = esc(fmtCauses([...g.causes].sort(), weapons));
      // the hromadas of a group are listed only while it is open: a salvo puts 1,769 of them
      // under alert, and rows nobody opened would only slow every redraw of the list
      const key = `${g.root}|${g.type}`;
      const open = openGroups.has(key);
      const leavesHtml = total > 1
        ? `<details data-key="${esc(key)}"${open ? " open" : ""}><summary>${esc(part)}</summary><ul class="leaves">${open ? leafRows(g.alerts) : ""}</ul></details>`
        : "";
      return `<li class="alert-group sev-${esc(g.severity)}" data-root="${esc(g.root)}" data-type="${esc(g.type)}" tabindex="0">
        <span class="swatch" style="background:${TYPE_COLOR[g.type] || "#888"}"></span>
        <div class="grow">
          <div class="row1"><strong>${esc(regionName(root))}</strong>
            <span class="type">${esc(t(`type.${g.type}`))}</span>
            <span class="sev">${esc(t(`sev.${g.severity}`))}</span></div>
          <div class="row2"><span data-since="${g.since}">${esc(t("alerts.since", { d: fmtElapsed((now() - g.since) / 1000) }))}</span>
            · ${esc(part)}${eta}${holding}</div>
          <div class="row3">${esc(t("alerts.cause"))}: ${causes || "—"}</div>
          ${leavesHtml}
        </div></li>`;
    })
    .join("");
}

// --- tracks --------------------------------------------------------------------------------

export function renderTracks() {
  const list = $("tracks-list");
  const fs = state.tracks.features;
  $("count-tracks").textContent = fs.length ? String(fs.length) : "";
  if (!fs.length) {
    list.innerHTML = `<li class="empty">${esc(t("tracks.none"))}</li>`;
    return;
  }
  list.innerHTML = fs
    .map((f) => {
      const p = f.properties;
      const what = [t(`obj.${p.object}`), p.weapon].filter(Boolean).join(" · ");
      const eta = p.eta_s === null || p.eta_s === undefined ? "" : ` · <span data-track-eta="${esc(p.eta_s)}">${esc(fmtEta(p.eta_s))}</span>`;
      return `<li class="track" data-lat="${p.position.lat}" data-lon="${p.position.lon}" tabindex="0">
        <span class="swatch track-dot"></span>
        <div class="grow"><div class="row1"><strong>${esc(p.track)}</strong> ${esc(what)}</div>
        <div class="row2">${esc(t("tracks.speed", { v: Math.round(p.speed_kmh) }))} · ${esc(t("tracks.regions", { n: p.regions }))}${eta}</div>
        <div class="row3">${esc(t("tracks.seen", { t: fmtTime(p.last_news) }))}${p.affiliation ? ` · ${esc(p.affiliation)}` : ""}</div></div></li>`;
    })
    .join("");
}

// --- incidents -----------------------------------------------------------------------------

export function renderIncidents() {
  const list = $("incidents-list");
  $("count-incidents").textContent = state.incidents.length ? String(state.incidents.length) : "";
  if (!state.incidents.length) {
    list.innerHTML = `<li class="empty">${esc(t("incidents.none"))}</li>`;
    return;
  }
  list.innerHTML = state.incidents
    .map((inc, i) => {
      const region = state.regions.get(inc.region);
      const root = rootOf(inc.region);
      const where = region && root && root.id !== region.id ? `${regionName(region)}, ${regionName(root)}` : regionName(region);
      const recovered = inc.type === "siren_fault" && inc.status === "recovered";
      const details = [
        inc.kind ? t("incidents.kind", { kind: inc.kind }) : "",
        inc.source ? t("incidents.source", { source: inc.source }) : "",
        inc.siren ? t("incidents.siren", { siren: inc.siren, status: inc.status || "?" }) : "",
        inc.reason || "",
      ].filter(Boolean).join(" · ");
      return `<li class="incident ${esc(inc.type)}${recovered ? " resolved" : ""}" data-index="${i}" tabindex="0">
        <span class="incident-icon ${inc.type === "silent_impact" ? "silent" : "siren"}">${inc.type === "silent_impact" ? "!" : "S"}</span>
        <div class="grow"><div class="row1"><strong>${esc(t(`incidents.${inc.type}`))}</strong> <span class="muted">${esc(fmtTime(inc.time))}</span></div>
        <div class="row2">${esc(where)}</div>${details ? `<div class="row3">${esc(details)}</div>` : ""}</div></li>`;
    })
    .join("");
}

// --- one region ----------------------------------------------------------------------------

export function showRegion(id) {
  currentRegion = id;
  regionHistory = [];
  regionRecent = null;
  renderRegion();
  loadHistory();
}

export function regionTouched(leaf) {
  // a transition under the region on show: its history changed, re-read it (once per burst)
  if (!currentRegion || !chain(leaf).some((r) => r.id === currentRegion)) return;
  clearTimeout(historyTimer);
  historyTimer = setTimeout(loadHistory, 800);
}

// The last 7 days of the region and its parts, with alert-hours counted by the server (the
// union of overlapping alerts), in one bounded read.
const DAYS = 7;

async function loadHistory() {
  const id = currentRegion;
  if (!id) return;
  try {
    const data = await api(`/api/v1/regions/${encodeURIComponent(id)}/recent?days=${DAYS}`);
    if (id !== currentRegion) return;
    regionHistory = data.alerts;
    regionRecent = data;
  } catch {
    regionHistory = [];
    regionRecent = null;
  }
  renderRegion();
}

export function renderRegion() {
  const box = $("region-body");
  if (!currentRegion) {
    box.innerHTML = `<p class="muted">${esc(t("region.hint"))}</p>`;
    return;
  }
  const region = state.regions.get(currentRegion);
  const agg = rollup();
  const rs = regionState(agg, currentRegion);
  const crumbs = chain(currentRegion)
    .reverse()
    .map((r) => `<a href="#" data-region="${esc(r.id)}">${esc(regionName(r))}</a>`)
    .join(" › ");
  const lvl = has(`level.${region.level}`) ? t(`level.${region.level}`) : region.level;
  const a = agg.get(currentRegion);
  const now_ = [];
  if (a) {
    for (const ty of a.types.values()) {
      const part = rs.total > 1 ? ` · ${t("alerts.part", { n: ty.leaves.size, m: rs.total })}` : "";
      now_.push(`<li><span class="swatch" style="background:${TYPE_COLOR[ty.type]}"></span>${esc(t(`type.${ty.type}`))} — ${esc(t(`sev.${ty.severity}`))}${esc(part)}</li>`);
    }
  }
  if (!now_.length) now_.push(`<li>${esc(t("region.calm"))}</li>`);
  if (rs.threat) now_.push(`<li class="threat threat-${rs.threat}">${esc(t("region.level", { level: t(`threat.${rs.threat}`) }))}</li>`);
  box.innerHTML = `
    <h2 id="region-name">${esc(regionName(region))}</h2>
    <p class="muted">${esc(lvl)} · <code>${esc(region.id)}</code>${region.alerts_uid ? ` · uid ${esc(region.alerts_uid)}` : ""}</p>
    <p class="crumbs">${crumbs}</p>
    <h3>${esc(t("region.state"))}</h3><ul class="plain">${now_.join("")}</ul>
    <h3>${esc(t("region.timeline"))}</h3>${timeline()}
    <h3>${esc(t("region.history"))}</h3>${historyList(region)}`;
}

function fmtHours(h) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(h);
}

/** Lanes per alert type over the last 7 days, each day's alert-hours in figures below. */
function timeline() {
  const rec = regionRecent;
  if (!rec) return `<p class="muted">…</p>`;
  const start = Date.parse(rec.since);
  const end = Date.parse(rec.until);
  const span = end - start;
  const types = Object.keys(rec.by_type);
  const lanes = types
    .map((type) => {
      const segs = regionHistory
        .filter((r) => r.alert_type === type)
        .map((r) => {
          const s = Math.max(start, Date.parse(r.started_at));
          const e = Math.min(end, r.ended_at ? Date.parse(r.ended_at) : end);
          if (e < start || s > end) return "";
          const left = ((s - start) / span) * 100;
          const width = Math.max(0.3, ((e - s) / span) * 100);
          return `<span class="seg" style="left:${left.toFixed(2)}%;width:${width.toFixed(2)}%;background:${TYPE_COLOR[type]}"></span>`;
        })
        .join("");
      // the type is named in words beside its lane: colour is never the only clue
      return `<div class="lane-row"><span class="lane-name">${esc(t(`type.${type}`))} · ${esc(t("region.hours.n", { h: fmtHours(rec.by_type[type]) }))}</span>
        <div class="lane" role="img" aria-label="${esc(t(`type.${type}`))}">${segs}</div></div>`;
    })
    .join("");
  const dayFmt = new Intl.DateTimeFormat(locale(), { weekday: "short", day: "numeric" });
  const days = rec.days
    .map((d) => {
      const h = d.alert_hours;
      const label = dayFmt.format(new Date(Date.parse(d.end) - 1));
      return `<li data-hours="${h}"><span class="day-bar" style="height:${Math.min(100, (h / 24) * 100).toFixed(1)}%"></span>
        <span class="day-h">${esc(fmtHours(h))}</span><span class="day-name">${esc(label)}</span></li>`;
    })
    .join("");
  return `<p id="region-hours" data-hours="${rec.alert_hours}"><strong>${esc(t("region.hours", { h: fmtHours(rec.alert_hours), d: DAYS }))}</strong>${rec.truncated ? ` <span class="muted">${esc(t("region.truncated"))}</span>` : ""}</p>
    <div class="timeline week">${lanes || `<p class="muted">${esc(t("region.history.none"))}</p>`}</div>
    <ol class="days" aria-label="${esc(t("region.days"))}">${days}</ol>`;
}

function historyList(region) {
  if (!regionHistory.length) return `<p class="muted">${esc(t("region.history.none"))}</p>`;
  const weapons = trackWeapons();
  return `<ul class="history">${regionHistory
    .slice(0, 100)
    .map((r) => {
      const s = Date.parse(r.started_at);
      const e = r.ended_at ? Date.parse(r.ended_at) : now();
      const where = r.region !== region.id ? `${regionName(state.regions.get(r.region))} · ` : "";
      const causes = fmtCauses(r.causes || [], weapons);
      return `<li><span class="swatch" style="background:${TYPE_COLOR[r.alert_type]}"></span><div class="grow">
        <div class="row1">${esc(where)}${esc(t(`type.${r.alert_type}`))} — ${esc(t(`sev.${r.severity}`))}</div>
        <div class="row2">${esc(fmtTime(r.started_at))} – ${r.ended_at ? esc(fmtTime(r.ended_at)) : esc(t("region.open"))} · ${esc(fmtElapsed((e - s) / 1000))}</div>
        ${causes ? `<div class="row3">${esc(causes)}</div>` : ""}</div></li>`;
    })
    .join("")}</ul>`;
}

// --- the public record ---------------------------------------------------------------------

let sthBox = { status: "loading" };

function b64(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

// The signed message is the RFC 8785 canonical JSON of the three signed fields: keys in
// sorted order, no spaces; the values are ASCII, so JSON.stringify gives their JCS form.
async function verifySth(sth, key) {
  if (!key) return "nokey";
  if (!globalThis.crypto || !crypto.subtle) return "unsupported";
  try {
    const pub = await crypto.subtle.importKey("raw", b64(key), { name: "Ed25519" }, false, ["verify"]);
    const msg = `{"root_hash":${JSON.stringify(sth.root_hash)},"timestamp":${JSON.stringify(sth.timestamp)},"tree_size":${Number(sth.tree_size)}}`;
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, pub, b64(sth.signature), new TextEncoder().encode(msg));
    return ok ? "valid" : "invalid";
  } catch (err) {
    return err && err.name === "NotSupportedError" ? "unsupported" : "invalid";
  }
}

// The key comes from the same server, so a valid signature alone proves little; what this
// browser can add is memory: the first key it saw is kept, and a different one later is shown
// as a warning, as is a tree smaller than one seen before (the log must only grow).
export async function loadSth() {
  try {
    const sth = await api("/api/v1/log/sth");
    let key = null;
    try {
      key = await api("/api/v1/log/key");
    } catch {
      key = null;
    }
    const verdict = await verifySth(sth, key && key.public_key);
    const seen = Number(localStorage.getItem("tocsin.sth.max") || 0);
    const shrunk = sth.tree_size < seen ? seen : 0;
    localStorage.setItem("tocsin.sth.max", String(Math.max(seen, sth.tree_size || 0)));
    const pinned = localStorage.getItem("tocsin.log.key");
    if (key && !pinned) localStorage.setItem("tocsin.log.key", key.public_key);
    const keyChanged = Boolean(key && pinned && pinned !== key.public_key);
    sthBox = { status: "ok", sth, verdict, shrunk, key, keyChanged };
  } catch (err) {
    sthBox = err.status === 404 ? { status: "none" } : { status: "error", error: err.message };
  }
  renderLog();
}

export function renderLog() {
  const info = state.info || {};
  const size = Math.max(info.log_size || 0, state.lastSeq || 0);
  let sth;
  if (sthBox.status === "none") sth = `<p class="muted" id="sth-status" data-status="none">${esc(t("log.sth.none"))}</p>`;
  else if (sthBox.status === "error") sth = `<p class="error" id="sth-status" data-status="error">${esc(t("log.sth.error", { error: sthBox.error }))}</p>`;
  else if (sthBox.status === "ok") {
    const s = sthBox.sth;
    const cls = sthBox.verdict === "valid" ? "ok" : sthBox.verdict === "invalid" ? "error" : "muted";
    sth = `<ul class="plain">
      <li>${esc(t("log.sth.size", { n: s.tree_size }))}</li>
      <li>${esc(t("log.sth.time", { t: fmtTime(s.timestamp) }))}</li>
      <li>${esc(t("log.sth.root"))}: <code class="hash">${esc(s.root_hash)}</code></li></ul>
      <p class="${cls}" id="sth-status" data-status="${esc(sthBox.verdict)}">${esc(t(`log.sth.${sthBox.verdict}`))}</p>
      ${sthBox.key ? `<p class="muted">${esc(t("log.sth.key"))}: <code class="hash">${esc(sthBox.key.key_id || sthBox.key.public_key)}</code></p>` : ""}
      ${sthBox.keyChanged ? `<p class="error">${esc(t("log.sth.keychanged"))}</p>` : ""}
      ${sthBox.shrunk ? `<p class="error">${esc(t("log.sth.shrunk", { n: sthBox.shrunk }))}</p>` : ""}`;
  } else sth = `<p class="muted">…</p>`;
  $("log-body").innerHTML = `
    <h3>${esc(t("log.server"))}</h3>
    <ul class="plain"><li>tocsin ${esc(t("log.version", { v: info.version || "?" }))}</li>
      <li id="log-mode" data-mode="${esc(info.mode || "")}">${esc(t("log.mode", { m: has(`modes.${info.mode}`) ? t(`modes.${info.mode}`) : info.mode || "?" }))}</li>
      <li>${esc(t("log.set", { s: info.region_set || "?" }))}</li>
      <li id="log-size">${esc(t("log.size", { n: size.toLocaleString(locale()) }))}</li></ul>
    <h3>${esc(t("log.sth"))}</h3>${sth}
    <button type="button" id="sth-refresh">${esc(t("log.refresh"))}</button>`;
  $("sth-refresh").onclick = loadSth;
}

// --- wiring --------------------------------------------------------------------------------

export function renderAll() {
  renderAlerts();
  renderTracks();
  renderIncidents();
  renderRegion();
  renderLog();
}

/** Once a second: running durations and countdowns. */
export function tick() {
  const n = now();
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = t("alerts.since", { d: fmtElapsed((n - Number(el.dataset.since)) / 1000) });
  }
  for (const el of document.querySelectorAll("[data-eta-region]")) {
    const a = state.alerts.get(`${el.dataset.etaRegion}|${el.dataset.etaType}`);
    if (a) el.textContent = fmtEta(etaNow(a));
  }
  for (const el of document.querySelectorAll("[data-track-eta]")) {
    el.textContent = fmtEta(Number(el.dataset.trackEta) - (n - state.tracksAt) / 1000);
  }
}

/** Clicks in the lists move the map to what was clicked. */
export function bindPanel(onRegion) {
  $("alerts-list").addEventListener("click", (ev) => {
    if (ev.target.closest("details")) return;
    const li = ev.target.closest(".alert-group");
    if (li) onRegion(li.dataset.root, true);
  });
  // the rows are focusable: Enter or Space on one does what a click does
  for (const id of ["alerts-list", "tracks-list", "incidents-list"]) {
    $(id).addEventListener("keydown", (ev) => {
      if ((ev.key === "Enter" || ev.key === " ") && ev.target.matches("li[tabindex]")) {
        ev.preventDefault();
        ev.target.click();
      }
    });
  }
  // "toggle" does not bubble: listen in the capture phase
  $("alerts-list").addEventListener("toggle", onGroupToggle, true);
  $("tracks-list").addEventListener("click", (ev) => {
    const li = ev.target.closest(".track");
    if (li) flyTo(Number(li.dataset.lat), Number(li.dataset.lon), 8);
  });
  $("incidents-list").addEventListener("click", (ev) => {
    const li = ev.target.closest(".incident");
    if (!li) return;
    const inc = state.incidents[Number(li.dataset.index)];
    const pos = inc && incidentPosition(inc);
    if (pos) flyTo(pos[0], pos[1], 9);
  });
  $("region-body").addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-region]");
    if (!a) return;
    ev.preventDefault();
    flyToRegion(a.dataset.region);
    showRegion(a.dataset.region);
  });
}
