// Installable and resilient: registers the service worker (sw.js), keeps the region layers for
// it, and shows the offline banner while the page has opened without the server — whether the
// browser knows it is offline or the server's answers come from the service worker's copy.

import { onReach, isOffline, readKey } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const CACHE = "tocsin-v1"; // the name sw.js uses
const listeners = [];

/** Call `fn(offline)` whenever the offline state changes. */
export function onOfflineChange(fn) {
  listeners.push(fn);
}

// Once the page holds the live state, losing the server is the stream banner's to tell (the
// alerts on show are real, only maybe out of date); this banner is for a page that opened
// without the server and shows no alerts at all.
let live = false;

export function setLive(on) {
  live = on;
  render();
}

export function offline() {
  return !live && (isOffline() || navigator.onLine === false);
}

export function render() {
  const off = offline();
  const banner = $("offline-banner");
  banner.hidden = !off;
  banner.textContent = t("offline.banner");
  document.body.classList.toggle("offline", off);
  for (const fn of listeners) fn(off);
}

export function initOffline() {
  onReach(render);
  window.addEventListener("online", render);
  window.addEventListener("offline", render);
  render();
  // Service workers need a secure context: https, or http on localhost. On a plain-http LAN
  // address the page still works, only not when the server is unreachable.
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
}

/** Keep the answers the map was drawn from, so a later visit can draw it offline. Needed on
 * the first visit only (the page asked before the worker was in control); later the worker
 * keeps them fresh as they pass by. */
export async function keepForOffline(urls) {
  if (!("caches" in window) || !("serviceWorker" in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.ready;
    const cache = await caches.open(CACHE);
    const key = readKey();
    for (const url of urls) {
      if (await cache.match(url)) continue;
      const res = await fetch(url, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
      if (res.ok) await cache.put(url, res);
    }
  } catch {
    // a copy for offline use is a convenience; the live page does not depend on it
  }
}
