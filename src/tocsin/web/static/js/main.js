// Start-up: server info, region layers, then live state. The stream is opened *before* the
// snapshot is read and what it brings meanwhile is applied after the snapshot, so no
// transition falls between the two.

import { api, ApiError, syncClock, now, readKey, setReadKey, isOffline, setReachable } from "./api.js";
import { initOffline, keepForOffline, offline, setLive, render as renderOffline } from "./offline.js";
import { state, apply, setSnapshot } from "./state.js";
import { t, has, setLang, applyStatic, onLangChange, regionName } from "./i18n.js";
import * as mapview from "./map.js";
import * as panel from "./panel.js";
import { initConsole, toggleRegion, renderConsole, selectionActive } from "./console.js";
import { connect } from "./stream.js";
import { initHere, here, render as renderHere } from "./here.js";
import { loadLabels, initLabels, drawLabels, search } from "./labels.js";
import { initSirens, refreshSoon as refreshSirens, render as renderSirens } from "./sirens.js";

const $ = (id) => document.getElementById(id);
let activeTab = "alerts";
let tracksTimer = null;
let tracksBusy = false;
const buffered = [];
let ready = false;

function setStatus(status) {
  const conn = $("conn");
  // back after an outage: the stream replays what was missed, but tracks are read, not
  // streamed, so read them again
  if (status === "live" && conn.dataset.state === "down" && ready) refreshTracksSoon();
  conn.dataset.state = status;
  $("conn-text").textContent = t(`conn.${status}`);
  // offline, the offline banner says more than this one
  $("stream-banner").hidden = status !== "down" || offline();
  if (status === "live") setReachable(true);
}

function showMode(info) {
  const banner = $("mode-banner");
  if (info.mode === "exercise" || info.mode === "test") {
    banner.hidden = false;
    banner.dataset.mode = info.mode;
    // both languages at once: a drill must never be mistaken for the real thing
    banner.textContent = info.mode === "exercise" ? "НАВЧАННЯ · EXERCISE" : "ТЕСТ · TEST";
    banner.title = t(info.mode === "exercise" ? "exercise" : "mode.test");
    document.body.classList.add("drill");
  }
}

function selectTab(name) {
  activeTab = name;
  for (const b of document.querySelectorAll("[data-tab]")) {
    const on = b.dataset.tab === name;
    b.setAttribute("aria-selected", String(on));
    // one tab stop for the whole bar; the arrows move within it (WAI-ARIA tabs pattern)
    b.tabIndex = on ? 0 : -1;
  }
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  // the map selects regions for the console only while the console is open
  document.body.classList.toggle("operator-mode", name === "operator");
  selectionActive(name === "operator");
  if (name === "log") panel.loadSth();
}

function onTabKey(ev) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const at = tabs.indexOf(document.activeElement);
  if (at < 0) return;
  const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  const tab = tabs[(to + tabs.length) % tabs.length];
  selectTab(tab.dataset.tab);
  tab.focus();
}

function openPanel(open) {
  document.body.classList.toggle("panel-closed", !open);
  $("panel-toggle").setAttribute("aria-expanded", String(open));
  // the map's box changed size; Leaflet must measure it again
  requestAnimationFrame(() => mapview.getMap() && mapview.getMap().invalidateSize());
}

function onRegionClick(id, fromList = false) {
  if (activeTab === "operator" && !fromList) {
    toggleRegion(id);
    return;
  }
  if (fromList) mapview.flyToRegion(id);
  panel.showRegion(id);
  selectTab("region");
  if (window.matchMedia("(max-width: 760px)").matches) openPanel(true);
}

// Tracks move between transitions too, but re-reading them on every burst of transitions
// (at most one read in flight, trailing by 700 ms) keeps footprints current without polling.
// One timer serves the whole burst (a salvo brings thousands of transitions in one task; a
// timer cleared and set per transition costs more than the transition itself).
let tracksDue = 0;
function refreshTracksSoon() {
  tracksDue = performance.now() + 700;
  if (!tracksTimer) tracksTimer = setTimeout(tracksWake, 700);
}

function tracksWake() {
  const wait = tracksDue - performance.now();
  if (wait > 4) {
    tracksTimer = setTimeout(tracksWake, wait);
    return;
  }
  tracksTimer = null;
  refreshTracks();
}

async function refreshTracks() {
  if (tracksBusy) return refreshTracksSoon();
  tracksBusy = true;
  try {
    const fc = await api("/api/v1/tracks/active");
    state.tracks = fc;
    state.tracksAt = now();
    mapview.drawTracks();
    panel.renderTracks();
    panel.renderAlerts();
  } catch {
    // the next transition tries again
  } finally {
    tracksBusy = false;
  }
}

// A burst of transitions is drawn once, in the next animation frame: the map first, then the
// lists in a task of their own, so the frame that shows the map is not held up by them and no
// single main-thread task grows with both (a salvo of 1,769 hromadas: docs/performance.md).
let paintQueued = false;
let listsQueued = false;
function repaintSoon() {
  if (paintQueued) return;
  paintQueued = true;
  requestAnimationFrame(() => {
    paintQueued = false;
    mapview.repaint();
    renderListsSoon();
  });
}

function renderListsSoon() {
  if (listsQueued) return;
  listsQueued = true;
  setTimeout(() => {
    listsQueued = false;
    panel.renderAlerts();
    renderHere();
    if (activeTab === "log") panel.renderLog();
  }, 0);
}

function onEnvelope(env) {
  if (!ready) {
    buffered.push(env);
    return;
  }
  const kind = apply(env);
  if (!kind) return;
  if (kind === "incidents") {
    mapview.drawIncidents();
    panel.renderIncidents();
    if (env.type === "siren_fault") refreshSirens();
  }
  if (kind === "alerts" || kind === "threat") {
    repaintSoon();
    panel.regionTouched(env.region);
  }
  refreshTracksSoon();
  if (activeTab === "log") renderListsSoon();
}

async function loadRegions(levels) {
  const fcs = await Promise.all(levels.map((lv) => api(`/api/v1/map/regions?level=${encodeURIComponent(lv)}`)));
  fcs.forEach((fc) => {
    for (const f of fc.features) {
      const p = f.properties;
      state.regions.set(p.id, { id: p.id, level: p.level, parent: p.parent, names: p.names, leaves: p.leaves, alerts_uid: p.alerts_uid });
    }
  });
  levels.forEach((lv, i) => mapview.addLevel(lv, fcs[i]));
}

function waitOpen(timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    const check = () => {
      if ($("conn").dataset.state === "live" || Date.now() - started > timeoutMs) resolve();
      else setTimeout(check, 50);
    };
    check();
  });
}

async function start() {
  applyStatic(document);
  for (const b of document.querySelectorAll("[data-lang]")) b.onclick = () => setLang(b.dataset.lang);
  for (const b of document.querySelectorAll("[data-tab]")) b.onclick = () => selectTab(b.dataset.tab);
  document.querySelector("[role=tablist]").addEventListener("keydown", onTabKey);
  $("panel-toggle").onclick = () => openPanel(document.body.classList.contains("panel-closed"));
  if (window.matchMedia("(max-width: 760px)").matches) openPanel(false);
  setStatus("connecting");
  initOffline();

  let info;
  try {
    info = await infoWithKey();
    // a copy kept by the service worker carries an old server time
    if (!isOffline()) syncClock(info.time);
    state.info = info;
    state.levels = info.levels.map((l) => l.level);
    showMode(info);
    await Promise.all([loadRegions(state.levels), loadLabels()]);
  } catch (err) {
    $("loading").textContent = t("load.failed", { error: err.message });
    $("loading").classList.add("error");
    return;
  }
  $("loading").hidden = true;
  mapview.initMap($("map"), { bounds: info.bounds, onRegionClick });
  mapview.addLevelControl();
  addLegend();
  mapview.showLevel();
  initLabels(mapview.getMap(), mapview.shownLevel);
  initSearch();

  // with a key (a --private server) the stream is opened with single-use tickets
  const ticket = readKey()
    ? async () => (await api("/api/v1/stream/ticket", { method: "POST" })).ticket
    : null;
  connect({ onEnvelope, onStatus: setStatus, lastSeq: () => state.lastSeq, ticket });
  keepForOffline(["/api/v1/info", ...state.levels.map((lv) => `/api/v1/map/regions?level=${encodeURIComponent(lv)}`)]);
  await waitOpen(3000);
  const [active, levels, tracks, incidents] = await snapshot();
  setLive(true);
  setSnapshot(active.alerts, levels.levels);
  state.tracks = tracks;
  state.tracksAt = now();
  state.incidents = incidents.incidents;
  ready = true;
  for (const env of buffered.splice(0)) apply(env);
  mapview.repaint();
  mapview.drawTracks();
  mapview.drawIncidents();
  initConsole();
  panel.bindPanel(onRegionClick);
  panel.renderAll();
  panel.loadSth();
  initHere(mapview.getMap());
  initSirens(mapview.getMap());
  document.body.dataset.ready = "true";

  setInterval(() => {
    panel.tick();
    mapview.tickTracks();
  }, 1000);
  onLangChange(() => {
    renderOffline();
    setStatus($("conn").dataset.state);
    if (state.info) showMode(state.info);
    mapview.relabel();
    drawLabels();
    renderHere();
    addLegend();
    panel.renderAll();
    renderConsole();
    renderSirens();
  });
  selectTab(activeTab);
}

/** The live state to start from. While the server cannot be reached the map stays up,
 * greyed under the offline banner, and the read is tried again every 3 s. */
async function snapshot() {
  for (;;) {
    try {
      return await Promise.all([
        api("/api/v1/alerts/active"),
        api("/api/v1/levels"),
        api("/api/v1/tracks/active"),
        api("/api/v1/incidents?limit=100").catch(() => ({ incidents: [] })),
      ]);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 0) throw err;
      document.body.dataset.ready = "offline";
      await new Promise((ok) => setTimeout(ok, 3000));
    }
  }
}

/** The server's info; on a --private server, asks for a key until one is accepted. */
async function infoWithKey() {
  for (;;) {
    try {
      return await api("/api/v1/info");
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      if (readKey()) {
        setReadKey(null);
        $("gate-error").textContent = t("gate.refused", { detail: err.message });
      }
    }
    setReadKey(await askKey());
  }
}

function askKey() {
  const gate = $("key-gate");
  gate.hidden = false;
  $("gate-key").focus();
  return new Promise((resolve) => {
    $("key-gate-form").onsubmit = (ev) => {
      ev.preventDefault();
      const key = $("gate-key").value.trim();
      if (!key) return;
      $("gate-key").value = "";
      gate.hidden = true;
      resolve(key);
    };
  });
}

/** The search box: names in either language, any usual spelling; a pick zooms to it. */
function initSearch() {
  const input = $("search");
  const list = $("search-results");
  let found = [];
  let active = -1;
  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  };
  const pick = (lb) => {
    close();
    input.value = regionName(state.regions.get(lb.id) || { names: { uk: lb.uk, en: lb.en } });
    // in the console a pick selects the region: the keyboard's way to pick regions
    if (activeTab === "operator") {
      toggleRegion(lb.id);
      mapview.flyToRegion(lb.id);
    } else onRegionClick(lb.id, true);
  };
  const render = () => {
    list.replaceChildren();
    found.forEach((lb, i) => {
      const li = document.createElement("li");
      li.id = `search-opt-${i}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === active));
      li.dataset.region = lb.id;
      const region = state.regions.get(lb.id);
      const parent = region && region.parent ? state.regions.get(region.parent) : null;
      li.textContent = regionName(region || { names: { uk: lb.uk, en: lb.en } });
      const small = document.createElement("small");
      const lvl = has(`level.${lb.level}`) ? t(`level.${lb.level}`) : lb.level;
      small.textContent = ` ${lvl}${parent ? ` · ${regionName(parent)}` : ""}`;
      li.append(small);
      li.onmousedown = (ev) => {
        ev.preventDefault();
        pick(lb);
      };
      list.append(li);
    });
    if (!found.length && input.value.trim().length >= 2) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = t("search.none");
      list.append(li);
    }
    list.hidden = !list.children.length;
    input.setAttribute("aria-expanded", String(!list.hidden));
    if (active >= 0) input.setAttribute("aria-activedescendant", `search-opt-${active}`);
    else input.removeAttribute("aria-activedescendant");
  };
  input.addEventListener("input", () => {
    found = search(input.value);
    active = found.length ? 0 : -1;
    render();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      if (!found.length) return;
      ev.preventDefault();
      active = (active + (ev.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      render();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      if (found[active]) pick(found[active]);
    } else if (ev.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", close);
}

let legend = null;
function addLegend() {
  const map = mapview.getMap();
  if (legend) legend.remove();
  const small = !window.matchMedia("(min-width: 1100px) and (min-height: 820px)").matches;
  const phone = window.matchMedia("(max-width: 760px)").matches;
  const Legend = L.Control.extend({
    // on a phone the bottom of the map is under the panel sheet and the attribution
    options: { position: phone ? "topleft" : "bottomleft" },
    onAdd() {
      const div = L.DomUtil.create("div", "legend");
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      const sw = (style, label) => `<li><span class="swatch" style="${style}"></span>${label}</li>`;
      const types = Object.entries(mapview.TYPE_COLOR).map(([ty, c]) => sw(`background:${c}`, t(`type.${ty}`))).join("");
      const red = mapview.TYPE_COLOR.air_raid;
      const dots = `radial-gradient(circle, ${mapview.mix(red, 0.9)} 1.6px, transparent 1.8px) 0 0 / 8px 8px, ${mapview.mix(red, 0.35)}`;
      const sev = sw(`background:${dots}`, t("sev.pre_alert")) + sw(`background:${mapview.mix(red, 0.7)}`, t("sev.alert")) +
        sw(`background:${red};outline:2px solid #5a0000;outline-offset:-2px`, t("sev.imminent"));
      const cover = sw(`background:${red}`, t("legend.full")) +
        sw(`background:repeating-linear-gradient(45deg, ${red} 0 3px, #f4f6f8 3px 6px)`, t("legend.partial"));
      const lv = [1, 2, 3].map((n) => {
        const s = mapview.THREAT_STYLE[n];
        const border = s.dashArray ? "dashed" : "solid";
        return sw(`background:#f4f6f8;border:${Math.round(s.weight)}px ${border} ${s.color}`, t(`threat.${n}`));
      }).join("");
      const marks = `<li><span class="incident-icon silent">!</span>${t("incidents.silent_impact")}</li>
        <li><span class="incident-icon siren">S</span>${t("incidents.siren_fault")}</li>
        <li><span class="swatch track-dot"></span>${t("legend.track")}</li>`;
      // open only where it leaves most of the map visible
      div.innerHTML = `<details ${small ? "" : "open"}><summary>${t("legend.title")}</summary>
        <div><section><h4>${t("legend.types")}</h4><ul>${types}</ul></section>
        <section><h4>${t("legend.severity")}</h4><ul>${sev}</ul></section>
        <section><h4>${t("legend.cover")}</h4><ul>${cover}</ul></section>
        <section><h4>${t("legend.levels")}</h4><ul>${lv}</ul></section>
        <section><h4>${t("legend.marks")}</h4><ul>${marks}</ul></section></div></details>`;
      return div;
    },
  });
  legend = new Legend().addTo(map);
}

// For people (and tests) poking at the page from the developer console.
window.tocsin = { state, mapview, search, here, ingest: (envs) => envs.forEach(onEnvelope), get map() { return mapview.getMap(); } };

start();
