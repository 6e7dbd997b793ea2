// What the page knows: the region hierarchy, active alerts, threat levels, tracks and
// incidents. Filled from the read API once, then kept current by stream transitions.

import { now } from "./api.js";

export const ALERT_TYPES = ["air_raid", "artillery_shelling", "urban_fights", "chemical", "nuclear"];
export const SEVERITY_RANK = { pre_alert: 0, alert: 1, imminent: 2 };
// When one region has several alert types, the map shows the gravest kind first.
const TYPE_PRIORITY = { nuclear: 5, chemical: 4, air_raid: 3, urban_fights: 2, artillery_shelling: 1 };

export const state = {
  info: null,
  levels: [], // level names, coarsest first
  regions: new Map(), // id -> {id, level, parent, names, leaves, alerts_uid}
  alerts: new Map(), // "region|type" -> {region, alert_type, severity, started_at, causes, eta_s, eta_base, holding}
  threat: new Map(), // leaf id -> level 1..3
  tracks: { type: "FeatureCollection", features: [] },
  tracksAt: 0, // when the tracks were read (server clock, ms)
  incidents: [], // newest first
  lastSeq: 0,
};

const listeners = new Set();

/** Call `fn(kind)` after every change ("alerts", "threat", "incidents", "tracks"). */
export function subscribe(fn) {
  listeners.add(fn);
}

export function notify(kind) {
  for (const fn of listeners) fn(kind);
}

/** Ancestors of a region, the region first. */
export function chain(id) {
  const out = [];
  let r = state.regions.get(id);
  while (r) {
    out.push(r);
    r = r.parent ? state.regions.get(r.parent) : null;
  }
  return out;
}

/** The root (e.g. oblast) of a region. */
export function rootOf(id) {
  const c = chain(id);
  return c.length ? c[c.length - 1] : null;
}

export function setSnapshot(active, levels) {
  state.alerts.clear();
  for (const a of active) {
    state.alerts.set(`${a.region}|${a.alert_type}`, { ...a, eta_base: now() });
  }
  state.threat.clear();
  for (const { region, level } of levels) if (level > 0) state.threat.set(region, level);
}

/** Fold one stream envelope in; returns the kind of change for `notify`, or null.
 * Re-applying a transition already reflected in the snapshot is harmless: each one states
 * the whole new state of its (region, type), so the latest always wins. */
export function apply(env) {
  if (typeof env.seq === "number" && env.seq > state.lastSeq) state.lastSeq = env.seq;
  const key = `${env.region}|${env.alert_type}`;
  switch (env.type) {
    case "alert_started":
    case "alert_updated": {
      const prev = state.alerts.get(key);
      state.alerts.set(key, {
        region: env.region,
        alert_type: env.alert_type,
        severity: env.severity,
        started_at: prev && env.type === "alert_updated" ? prev.started_at : env.time,
        causes: env.causes || [],
        eta_s: env.eta_s,
        eta_base: Date.parse(env.time) || now(),
        holding: false,
      });
      return "alerts";
    }
    case "alert_ended":
      state.alerts.delete(key);
      return "alerts";
    case "level_changed":
      if (env.level > 0) state.threat.set(env.region, env.level);
      else state.threat.delete(env.region);
      return "threat";
    case "silent_impact":
    case "siren_fault":
      if (!state.incidents.some((i) => i.seq === env.seq)) {
        state.incidents.unshift(env);
        state.incidents.sort((a, b) => b.seq - a.seq);
      }
      return "incidents";
    default:
      return null;
  }
}

/** Incidents worth a red mark: every silent impact, and each siren's latest report when it
 * is a fault (a siren that reported "recovered" since has no mark). */
export function markedIncidents() {
  const latestBySiren = new Map();
  for (const inc of state.incidents) {
    // newest first: the first report of a siren is its latest
    if (inc.type === "siren_fault" && !latestBySiren.has(inc.siren)) latestBySiren.set(inc.siren, inc);
  }
  return state.incidents.filter(
    (inc) => inc.type === "silent_impact" || (latestBySiren.get(inc.siren) === inc && inc.status !== "recovered"),
  );
}

/** Seconds until the threat reaches the region, counted down since it was computed. */
export function etaNow(alert) {
  if (alert.eta_s === null || alert.eta_s === undefined) return null;
  return alert.eta_s - (now() - alert.eta_base) / 1000;
}

function better(a, b) {
  // a beats b when more urgent, then when of a graver kind
  if (!b) return true;
  const d = SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity];
  if (d) return d > 0;
  return (TYPE_PRIORITY[a.type] || 0) > (TYPE_PRIORITY[b.type] || 0);
}

/** Roll leaf alerts and levels up the hierarchy: for every region with anything going on,
 * the alerted leaves per type (with their worst severity) and the highest threat level. */
export function rollup() {
  const agg = new Map();
  const get = (id) => {
    let a = agg.get(id);
    if (!a) {
      a = { types: new Map(), leaves: new Set(), threat: 0 };
      agg.set(id, a);
    }
    return a;
  };
  for (const alert of state.alerts.values()) {
    for (const r of chain(alert.region)) {
      const a = get(r.id);
      a.leaves.add(alert.region);
      let ty = a.types.get(alert.alert_type);
      if (!ty) {
        ty = { type: alert.alert_type, leaves: new Set(), severity: alert.severity };
        a.types.set(alert.alert_type, ty);
      }
      ty.leaves.add(alert.region);
      if (SEVERITY_RANK[alert.severity] > SEVERITY_RANK[ty.severity]) ty.severity = alert.severity;
    }
  }
  for (const [leaf, level] of state.threat) {
    for (const r of chain(leaf)) {
      const a = get(r.id);
      a.threat = Math.max(a.threat, level);
    }
  }
  return agg;
}

/** How a region is drawn: its leading alert type and severity, whole or partly, and level. */
export function regionState(agg, id) {
  const a = agg.get(id);
  const region = state.regions.get(id);
  const out = { state: "none", type: null, coverage: "none", threat: 0, alerted: 0, total: region ? region.leaves : 1 };
  if (!a) return out;
  out.threat = a.threat;
  out.alerted = a.leaves.size;
  let best = null;
  for (const ty of a.types.values()) if (better(ty, best)) best = ty;
  if (best) {
    out.state = best.severity;
    out.type = best.type;
    out.coverage = best.leaves.size >= out.total ? "full" : "partial";
  }
  return out;
}
