// Durations, countdowns and clock times, in the page's language.

import { locale, t } from "./i18n.js";

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (v) => String(v).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** How long something has lasted, in words a glance can read: "1 h 05 min", "3 min 12 s". */
export function fmtElapsed(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (v) => String(v).padStart(2, "0");
  if (h) return `${h} ${t("unit.h")} ${pad(m)} ${t("unit.min")}`;
  if (m) return `${m} ${t("unit.min")} ${pad(s % 60)} ${t("unit.s")}`;
  return `${s} ${t("unit.s")}`;
}

/** A countdown: "ETA 3:20", or "arriving now" once it has run out. */
export function fmtEta(seconds) {
  return seconds > 0 ? t("alerts.eta", { eta: fmtDuration(seconds) }) : t("alerts.eta.now");
}

/** Local wall-clock time of an RFC 3339 timestamp; the date too when it is not today. */
export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (!sameDay) Object.assign(opts, { day: "numeric", month: "short" });
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}
