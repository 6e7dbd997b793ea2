// Talking to the tocsin server this page came from (same origin only: nothing else is
// contacted, so the page works on an isolated network).

let clockOffsetMs = 0;
// On a --private server every read needs a key. It lives in sessionStorage (like the operator
// key: gone with the tab), never in a URL or localStorage; the stream gets single-use tickets.
const KEY_SLOT = "tocsin.key";

export function readKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

export function setReadKey(key) {
  if (key) sessionStorage.setItem(KEY_SLOT, key);
  else sessionStorage.removeItem(KEY_SLOT);
}

/** An HTTP error with the server's JSON answer attached. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? String(body.detail) : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

// Whether the server was reachable at the last call: false after a network error, or when
// the answer was the service worker's copy (sw.js marks those with X-Tocsin-Offline).
let offline = false;
const reachListeners = [];

export function isOffline() {
  return offline;
}

/** Call `fn()` when reachability changes. */
export function onReach(fn) {
  reachListeners.push(fn);
}

export function setReachable(ok) {
  if (offline === !ok) return;
  offline = !ok;
  for (const fn of reachListeners) fn();
}

/** GET or POST JSON; rejects with ApiError (status 0 when the server could not be reached). */
export async function api(path, { method = "GET", body, key } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const auth = key || readKey();
  if (auth) headers.Authorization = `Bearer ${auth}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    setReachable(false);
    throw new ApiError(0, { detail: String(err) });
  }
  setReachable(res.headers.get("X-Tocsin-Offline") !== "1");
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Remember how far this device's clock is from the server's, so durations and event
 * times use the server's time (a phone's clock may be minutes off). */
export function syncClock(serverTime) {
  const t = Date.parse(serverTime);
  if (!Number.isNaN(t)) clockOffsetMs = t - Date.now();
}

/** Now, on the server's clock, in milliseconds since the epoch. */
export function now() {
  return Date.now() + clockOffsetMs;
}
