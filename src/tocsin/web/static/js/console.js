// The operator console: a key typed into the page (kept in sessionStorage, so it dies with the
// tab), regions picked on the map, and an operator_alert or threat_level event sent only after
// a confirmation that shows exactly what will be sent. The server logs every event with the
// name of the key that sent it.

import { api, ApiError, now } from "./api.js";
import { state, ALERT_TYPES } from "./state.js";
import { t, regionName, has } from "./i18n.js";
import { esc, setSelection } from "./map.js";

const $ = (id) => document.getElementById(id);
const selected = new Set();
let who = null; // {name, role} of the key in use
let pending = null; // the event awaiting confirmation

export function initConsole() {
  $("op-key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useKey();
  });
  $("op-key-forget").onclick = forgetKey;
  $("op-name").addEventListener("input", () => sessionStorage.setItem("tocsin.operator", $("op-name").value));
  $("op-selection-clear").onclick = () => {
    selected.clear();
    changed();
  };
  for (const r of document.querySelectorAll('input[name="op-action"]')) r.addEventListener("change", showFields);
  $("op-review").onclick = review;
  $("confirm-send").onclick = send;
  $("confirm-cancel").onclick = closeConfirm;
  $("confirm").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") closeConfirm();
    // a modal dialog keeps the focus: Tab cycles between its two buttons
    if (ev.key === "Tab") {
      ev.preventDefault();
      (document.activeElement === $("confirm-send") ? $("confirm-cancel") : $("confirm-send")).focus();
    }
  });
  $("op-selection").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-region]");
    if (!b) return;
    selected.delete(b.dataset.region);
    changed();
  });
  fillTypes();
  showFields();
  const key = sessionStorage.getItem("tocsin.key");
  if (key) {
    $("op-key").value = key;
    useKey();
  }
  $("op-name").value = sessionStorage.getItem("tocsin.operator") || "";
  renderConsole();
}

function fillTypes() {
  const sel = $("op-type");
  const value = sel.value || "air_raid";
  sel.innerHTML = ALERT_TYPES.map((ty) => `<option value="${ty}">${esc(t(`type.${ty}`))}</option>`).join("");
  sel.value = value;
  const lv = $("op-level");
  const level = lv.value || "1";
  lv.innerHTML = [0, 1, 2, 3].map((n) => `<option value="${n}">${n} — ${esc(t(`threat.${n}`))}</option>`).join("");
  lv.value = level;
}

function action() {
  const r = document.querySelector('input[name="op-action"]:checked');
  return r ? r.value : "raise";
}

function showFields() {
  const level = action() === "level";
  $("op-type-row").hidden = level;
  $("op-level-row").hidden = !level;
}

/** Click on the map while the console is open: select or unselect the region. */
export function toggleRegion(id) {
  if (selected.has(id)) selected.delete(id);
  else selected.add(id);
  changed();
}

function changed() {
  setSelection(selected);
  renderConsole();
}

export function selectionActive(on) {
  setSelection(on ? selected : []);
}

async function useKey() {
  const key = $("op-key").value.trim();
  if (!key) return;
  try {
    who = await api("/api/v1/whoami", { key });
    sessionStorage.setItem("tocsin.key", key);
    if (!$("op-name").value) $("op-name").value = who.name;
    $("op-key-status").className = "ok";
    $("op-key-status").textContent = t("op.as", { name: who.name, role: who.role });
    if (who.role !== "operator" && who.role !== "admin") {
      $("op-key-status").className = "error";
      $("op-key-status").textContent += ` — ${t("op.role.warn", { role: who.role })}`;
    }
  } catch (err) {
    who = null;
    $("op-key-status").className = "error";
    $("op-key-status").textContent = describe(err).join(" ");
  }
}

function forgetKey() {
  sessionStorage.removeItem("tocsin.key");
  $("op-key").value = "";
  who = null;
  $("op-key-status").textContent = "";
}

export function renderConsole() {
  const box = $("op-selection");
  if (!selected.size) {
    box.innerHTML = `<p class="muted">${esc(t("op.selection.none"))}</p>`;
  } else {
    box.innerHTML = [...selected]
      .map((id) => {
        const r = state.regions.get(id);
        const lvl = r && has(`level.${r.level}`) ? t(`level.${r.level}`) : r ? r.level : "";
        return `<button type="button" class="chip" data-region="${esc(id)}" title="×">${esc(regionName(r))} <span class="muted">${esc(lvl)}</span> ×</button>`;
      })
      .join("");
  }
  fillTypes();
  if (who) $("op-key-status").textContent = t("op.as", { name: who.name, role: who.role });
}

function build() {
  const base = {
    id: `console-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    time: new Date(now()).toISOString(),
    // a key sends as its own name (or a source listed with it): the server refuses others
    source: who ? who.name : "dashboard",
    regions: [...selected],
    operator: $("op-name").value.trim(),
  };
  const note = $("op-note").value.trim();
  if (note) base.note = note;
  const act = action();
  if (act === "level") return { ...base, type: "threat_level", level: Number($("op-level").value) };
  return { ...base, type: "operator_alert", alert_type: $("op-type").value, action: act };
}

function review() {
  const msg = $("op-result");
  msg.className = "error";
  const key = sessionStorage.getItem("tocsin.key") || $("op-key").value.trim();
  if (!key) return void (msg.textContent = t("op.need.key"));
  if (!selected.size) return void (msg.textContent = t("op.need.regions"));
  if (!$("op-name").value.trim()) return void (msg.textContent = t("op.need.name"));
  msg.textContent = "";
  pending = { event: build(), key };
  const ev = pending.event;
  const n = ev.regions.length;
  const head = ev.type === "threat_level"
    ? t("confirm.level", { level: `${ev.level} (${t(`threat.${ev.level}`)})`, n })
    : t(ev.action === "raise" ? "confirm.raise" : "confirm.clear", { type: t(`type.${ev.alert_type}`), n });
  $("confirm-summary").innerHTML = `<p class="confirm-head ${esc(ev.action || "level")}">${esc(head)}</p>
    <ul>${ev.regions.map((id) => `<li>${esc(regionName(state.regions.get(id)))}</li>`).join("")}</ul>
    <p>${esc(t("confirm.as", { name: ev.operator, key: who ? who.name : "?" }))}</p>`;
  $("confirm-json").textContent = JSON.stringify(ev, null, 2);
  $("confirm").hidden = false;
  $("confirm-send").focus();
}

function closeConfirm() {
  $("confirm").hidden = true;
  pending = null;
  $("op-review").focus(); // back where the keyboard user left off
}

async function send() {
  if (!pending) return;
  const { event, key } = pending;
  closeConfirm();
  const msg = $("op-result");
  msg.className = "muted";
  msg.textContent = "…";
  try {
    const res = await api("/api/v1/events", { method: "POST", body: event, key });
    const a = res.accepted[0];
    msg.className = "ok";
    msg.textContent = a.duplicate ? t("op.duplicate", { seq: a.seq }) : t("op.sent", { seq: a.seq, n: a.transitions });
  } catch (err) {
    msg.className = "error";
    msg.innerHTML = describe(err).map((line) => `<div>${esc(line)}</div>`).join("");
  }
}

/** An API error in words: what the server said, field by field for invalid events. */
function describe(err) {
  if (!(err instanceof ApiError)) return [String(err)];
  const detail = err.body.detail || err.message;
  switch (err.status) {
    case 0:
      return [t("err.network")];
    case 401:
      return [t("err.401", { detail })];
    case 403:
      return [t("err.403", { detail })];
    case 422:
      return [t("err.422"), ...(err.body.errors || []).map((e) => `${e.field}: ${e.reason}`), ...(err.body.errors ? [] : [String(detail)])];
    case 429:
      return [t("err.429")];
    default:
      return [t("err.other", { status: err.status, detail })];
  }
}
