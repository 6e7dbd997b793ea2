// "Where I am": a resident picks their hromada (browser geolocation, or a tap on the map), sees
// its state in large type, and, if they turn it on, gets a notification and a sound when it
// changes while the page is open. The choice stays on this device (localStorage) and is never
// sent anywhere but the locate read of this server.

import { api } from "./api.js";
import { state, rollup, regionState, chain } from "./state.js";
import { t, regionName } from "./i18n.js";

const SLOT = "tocsin.here";
const NOTIFY_SLOT = "tocsin.here.notify";
const $ = (id) => document.getElementById(id);

let map;
let picking = false;
let lastSig = null;
export const here = { id: null, notified: 0 };

export function initHere(leafletMap) {
  map = leafletMap;
  const saved = localStorage.getItem(SLOT);
  if (saved && state.regions.has(saved)) here.id = saved;
  $("here-btn").onclick = locateMe;
  $("here-forget").onclick = () => {
    here.id = null;
    localStorage.removeItem(SLOT);
    render();
  };
  const notify = $("here-notify");
  notify.checked = localStorage.getItem(NOTIFY_SLOT) === "1";
  notify.onchange = async () => {
    if (notify.checked && "Notification" in window && Notification.permission !== "granted") {
      // asked only when the resident turns it on, never on load
      const answer = await Notification.requestPermission();
      if (answer !== "granted") notify.checked = false;
    }
    localStorage.setItem(NOTIFY_SLOT, notify.checked ? "1" : "0");
    if (notify.checked) beep(0.01); // unlocks audio while the user's click still counts
  };
  map.on("click", (ev) => {
    if (!picking) return;
    picking = false;
    map.getContainer().classList.remove("picking");
    pickAt(ev.latlng.lat, ev.latlng.lng);
  });
  render();
}

function setHint(text) {
  const hint = $("here-hint");
  hint.textContent = text;
  hint.hidden = !text;
}

function locateMe() {
  setHint(t("here.locating"));
  const tap = () => {
    picking = true;
    map.getContainer().classList.add("picking");
    setHint(t("here.tap"));
  };
  if (!("geolocation" in navigator)) return tap();
  navigator.geolocation.getCurrentPosition(
    (pos) => pickAt(pos.coords.latitude, pos.coords.longitude),
    tap,
    { enableHighAccuracy: false, timeout: 8000, maximumAge: 600000 },
  );
}

async function pickAt(lat, lon) {
  try {
    const found = await api(`/api/v1/regions/locate?lat=${lat.toFixed(5)}&lon=${lon.toFixed(5)}`);
    here.id = found.chain[0].id;
    localStorage.setItem(SLOT, here.id);
    setHint("");
    lastSig = null;
    render();
  } catch (err) {
    setHint(t("here.outside"));
  }
}

/** Redraw the card; after a change of the chosen area's state, notify (when enabled). */
export function render() {
  const card = $("here");
  card.hidden = !here.id;
  if (!here.id) return;
  const region = state.regions.get(here.id);
  const rs = regionState(rollup(), here.id);
  const sig = `${rs.state}|${rs.type}|${rs.threat}`;
  const parents = chain(here.id).slice(1).map(regionName).join(", ");
  $("here-name").textContent = regionName(region);
  $("here-parents").textContent = parents;
  card.dataset.state = rs.state;
  // the words and the symbol say the state; colour only repeats it
  $("here-symbol").textContent = rs.state === "none" ? "✓" : "⚠";
  const text = rs.state === "none" ? t("here.calm") : `${t(`type.${rs.type}`)} — ${t(`sev.${rs.state}`)}`;
  $("here-state").textContent = text;
  if (lastSig !== null && sig !== lastSig) announce(regionName(region), text);
  lastSig = sig;
}

function announce(name, text) {
  if (!$("here-notify").checked) return;
  here.notified += 1;
  beep(0.25);
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      new Notification(`${name}: ${text}`, { tag: "tocsin-here", renotify: true });
    } catch {
      // some mobile browsers allow notifications only from a service worker
    }
  }
}

let audio = null;
function beep(volume) {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = volume;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.6);
  } catch {
    // no audio on this device: the notification and the card still say it
  }
}
