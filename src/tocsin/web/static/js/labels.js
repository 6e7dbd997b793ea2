// Region names on the map and the search box. Label points come from a static file computed
// at build time (scripts/build_labels.py), so nothing is measured in the browser and no tile
// or geocoding service is needed.

/* global L */
import { getLang } from "./i18n.js";

const MAX_LABELS = 300; // per view: beyond that they only cover each other
// px per character and line height of each level's labels (see .region-label in app.css)
const SIZE = { oblast: [7.6, 16], raion: [6.6, 15], hromada: [6.2, 14] };

let map;
let labels = []; // {id, level, lat, lon, uk, en, keys: [folded names]}
let layer;
let levelNow = () => null;

export async function loadLabels() {
  const res = await fetch("/static/data/labels.json");
  if (!res.ok) throw new Error(`labels: HTTP ${res.status}`);
  const data = await res.json();
  labels = data.labels.map(([id, level, lat, lon, uk, en]) => ({
    id, level, lat, lon, uk, en, keys: [fold(uk), fold(en)],
  }));
  return labels;
}

/** Show the names of the level on the map (`shownLevel()`), as many as fit the view. */
export function initLabels(leafletMap, shownLevel) {
  map = leafletMap;
  levelNow = shownLevel;
  layer = L.layerGroup().addTo(map);
  map.on("moveend zoomend", drawLabels);
  drawLabels();
}

export function drawLabels() {
  if (!layer) return;
  layer.clearLayers();
  const level = levelNow();
  const view = map.getBounds().pad(0.05);
  const [cw, h] = SIZE[level] || SIZE.hromada;
  const boxes = []; // [x0, y0, x1, y1] of labels placed: none may overlap another
  const lang = getLang();
  let placed = 0;
  for (const lb of labels) {
    if (lb.level !== level || !view.contains([lb.lat, lb.lon])) continue;
    const name = lang === "uk" ? lb.uk : lb.en;
    const p = map.latLngToContainerPoint([lb.lat, lb.lon]);
    const half = (name.length * cw) / 2 + 2;
    const box = [p.x - half, p.y - h / 2, p.x + half, p.y + h / 2];
    if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
    boxes.push(box);
    L.marker([lb.lat, lb.lon], {
      icon: L.divIcon({ className: `region-label ${level}`, html: escapeHtml(name), iconSize: null }),
      interactive: false,
      keyboard: false,
    }).addTo(layer);
    if (++placed >= MAX_LABELS) break;
  }
  map.getContainer().dataset.labels = String(placed);
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// --- search -----------------------------------------------------------------------------------

// Ukrainian letters to Latin by the national (2010) table, with Russian-only letters too, since
// people type names the way they learnt them.
const CYR = {
  а: "a", б: "b", в: "v", г: "h", ґ: "g", д: "d", е: "e", є: "ie", ж: "zh", з: "z", и: "y", і: "i",
  ї: "i", й: "i", к: "k", л: "l", м: "m", н: "n", о: "o", п: "p", р: "r", с: "s", т: "t", у: "u",
  ф: "f", х: "kh", ц: "ts", ч: "ch", ш: "sh", щ: "shch", ь: "", ю: "iu", я: "ia", ъ: "", ы: "y",
  э: "e", ё: "e",
};
// Then every spelling of a sound to one letter: Kharkiv = Harkiv, Zaporizhzhia = Zaporizhia =
// Zaporozhye (vowels aside), Odesa = Odessa, Kyiv = Kiev (vowels aside).
const SOUNDS = [
  [/shch|sch/g, "s"], [/kh|ch|h/g, "h"], [/zh/g, "z"], [/sh/g, "s"], [/ts|tz|c/g, "c"],
  [/g/g, "h"], [/w/g, "v"], [/x/g, "ks"], [/q/g, "k"],
  [/y[ie]|[ij]e/g, "e"], [/[yij]u/g, "u"], [/[yij]a/g, "a"], [/[yj]/g, "i"],
  [/(.)\1+/g, "$1"],
];

/** A name folded for matching: Latin, lower case, one letter per sound, no punctuation. */
export function fold(name) {
  let s = String(name).toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  s = s.replace(/[\u0400-\u04ff]/g, (c) => CYR[c] ?? "");
  s = s.replace(/[^a-z]/g, "");
  for (const [re, to] of SOUNDS) s = s.replace(re, to);
  return s;
}

// Region names are adjectives ("Kremenchutska" hromada, "Kharkivska" oblast); people type the
// town ("Kremenchuk", "Kharkiv"). The stem drops the adjective ending; -ck- / -k stands for the
// k -> ts alternation.
function stem(key) {
  return key.replace(/(s|c|z)?(ka|kii|ki|ke|koe|kaa|kie)$/, "");
}

const skeleton = (key) => key[0] + key.slice(1).replace(/[aeiou]/g, "");
const LEVEL_RANK = { oblast: 0, raion: 1, hromada: 2 };

/** Regions whose Ukrainian or English name matches `query`, best first (at most `limit`). */
export function search(query, limit = 8) {
  const q = fold(query);
  if (q.length < 2) return [];
  const qs = skeleton(q);
  const scored = [];
  for (const lb of labels) {
    let best = 0;
    for (const key of lb.keys) {
      const st = stem(key);
      let score = 0;
      if (key === q) score = 100;
      else if (st.length >= 3 && (st === q || (q.startsWith(st) && q.length - st.length <= 2))) score = 90;
      else if (key.startsWith(q)) score = 80;
      else if (key.includes(q)) score = 60;
      else if (q.length >= 4 && st.length >= 3 && skeleton(st) === qs) score = 50;
      best = Math.max(best, score);
    }
    if (best) scored.push([best, lb]);
  }
  scored.sort((a, b) => b[0] - a[0] || (LEVEL_RANK[a[1].level] ?? 9) - (LEVEL_RANK[b[1].level] ?? 9)
    || a[1].en.localeCompare(b[1].en));
  return scored.slice(0, limit).map(([, lb]) => lb);
}
