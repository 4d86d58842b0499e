// lstmkit explorer: the page. Plain JS and canvas, no framework, no build step, nothing loaded from elsewhere.
//
// Data comes from the server's /api routes or, in an exported file, from window.EXPLORER_DATA (the same JSON).
// A sequence payload holds, per record, {shape: [T, S], data: base64 float32 (T, S) row-major}, the input
// track and the readout (see lstmkit/explorer/data.py). Every view of the page draws payloads through View.
"use strict";

// ---- data ----------------------------------------------------------------------------------------------------

const EMBEDDED = window.EXPLORER_DATA || null;
const cache = new Map();

function decodeRecord(rec) {
  const bytes = Uint8Array.from(atob(rec.data), (ch) => ch.charCodeAt(0));
  const values = new Float32Array(bytes.buffer);
  const [T, S] = rec.shape;
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return { T, S, values, lo, hi };
}

function decodePayload(p) {
  const records = {};
  for (const [name, rec] of Object.entries(p.records)) records[name] = decodeRecord(rec);
  return { ...p, records };
}

async function getJSON(url, body) {
  const init = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(url, init);
  const json = await response.json();
  if (!response.ok) throw new Error(json.error || `${url}: HTTP ${response.status}`);
  return json;
}

async function getMeta() {
  return EMBEDDED ? EMBEDDED.meta : getJSON("api/meta");
}

async function getSequence(subject, seq, layer, direction) {
  const key = `${subject}/${seq}/${layer}/${direction}`;
  if (!cache.has(key)) {
    let promise;
    if (EMBEDDED) {
      const p = EMBEDDED.sequences[key];
      promise = p ? Promise.resolve(decodePayload(p)) :
        Promise.reject(new Error(`sequence ${seq} is not in this file (it holds ${EMBEDDED.meta.match_sequences})`));
    } else {
      promise = getJSON(`api/sequence?subject=${subject}&seq=${seq}&layer=${layer}&direction=${direction}`)
        .then(decodePayload);
    }
    cache.set(key, promise);
    promise.catch(() => cache.delete(key));
  }
  return cache.get(key);
}

// ---- select and match (the exported file's port of lstmkit/explorer/match.py; same rule, same order) ---------

function onUnits(rec, start, stop, threshold) {
  const on = [];
  for (let s = 0; s < rec.S; s++) {
    let all = true;
    for (let t = start; t <= stop && all; t++) all = rec.values[t * rec.S + s] >= threshold;
    on.push(all);
  }
  return on;
}

async function matchRanges(req, sequences) {
  const query = (await getSequence(0, req.seq, req.layer, req.direction)).records[req.record];
  if (!(0 <= req.start && req.start <= req.stop && req.stop < query.T))
    throw new Error(`the selected range must satisfy 0 <= start <= stop < T=${query.T}`);
  const selected = onUnits(query, req.start, req.stop, req.threshold);
  if (!selected.some((x) => x))
    throw new Error(`no unit is on (>= ${req.threshold}) at every step ${req.start}..${req.stop}: lower the ` +
      "threshold or select a shorter range");
  const L = req.stop - req.start + 1;
  const windows = [];
  for (let n = 0; n < sequences; n++) {
    const rec = (await getSequence(0, n, req.layer, req.direction)).records[req.record];
    for (let t = 0; t + L <= rec.T; t++) {
      const on = onUnits(rec, t, t + L - 1, req.threshold);
      let inter = 0, union = 0;
      for (let s = 0; s < rec.S; s++) { inter += on[s] && selected[s]; union += on[s] || selected[s]; }
      windows.push({ seq: n, start: t, stop: t + L - 1, score: inter / union, units_on: inter });
    }
  }
  windows.sort((a, b) => b.score - a.score); // stable: ties keep (sequence, start) order
  const q = windows.findIndex((w) => w.seq === req.seq && w.start === req.start);
  windows.unshift(...windows.splice(q, 1)); // the query first (score 1 by construction), as match.py lists it
  const taken = new Map(), hits = [];
  for (const w of windows) {
    if (hits.length === req.top || w.score <= 0) break;
    const starts = taken.get(w.seq) || [];
    if (starts.some((u) => Math.abs(w.start - u) < L)) continue;
    starts.push(w.start); taken.set(w.seq, starts);
    hits.push(w);
  }
  const units = [];
  selected.forEach((x, s) => { if (x) units.push(s); });
  return { units, hits };
}

// ---- colours ---------------------------------------------------------------------------------------------------

// sequential (a record that is never negative: sigmoid gates) white -> deep blue; diverging blue - white - red
function sequential(v) {
  const x = Math.max(0, Math.min(1, v));
  return [255 - 225 * x, 255 - 180 * x, 255 - 90 * x];
}
function diverging(v) {
  const x = Math.max(-1, Math.min(1, v));
  return x >= 0 ? [255, 255 - 200 * x, 255 - 210 * x] : [255 + 210 * x, 255 + 160 * x, 255];
}
function scaleOf(rec) {
  if (rec.lo >= 0) { const hi = Math.max(1, rec.hi); return { kind: "seq", lo: 0, hi, text: `0 … ${fmt(hi)}` }; }
  const m = Math.max(Math.abs(rec.lo), Math.abs(rec.hi)) || 1;
  return { kind: "div", lo: -m, hi: m, text: `±${fmt(m)}` };
}
// 511 colours over the scale, as little-endian RGBA words for an ImageData's Uint32Array view
function lookupTable(scale) {
  if (!scale.lut) {
    scale.lut = new Uint32Array(511);
    for (let k = 0; k < 511; k++) {
      const v = scale.kind === "seq" ? (k / 510) * scale.hi : ((k - 255) / 255) * scale.hi;
      const [r, g, b] = colour(scale, v);
      scale.lut[k] = (255 << 24 | Math.round(b) << 16 | Math.round(g) << 8 | Math.round(r)) >>> 0;
    }
  }
  return scale.lut;
}
function lutIndex(scale, v) {
  const x = scale.kind === "seq" ? (v / scale.hi) * 510 : (v / scale.hi) * 255 + 255;
  return Math.max(0, Math.min(510, Math.round(x)));
}
function colour(scale, v) { return scale.kind === "seq" ? sequential(v / scale.hi) : diverging(v / scale.hi); }
function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2); }
const SYMBOL_HUES = [210, 30, 120, 280, 0, 60, 170, 330, 90, 240, 15, 150, 300, 45, 195, 270, 0];

// ---- the shared viewport (zoom and scroll) ----------------------------------------------------------------------

const viewport = {
  T: 1, t0: 0, t1: 1, listeners: [],
  set(t0, t1) {
    const span = Math.max(4, Math.min(this.T, t1 - t0));
    t0 = Math.max(0, Math.min(this.T - span, t0));
    this.t0 = t0; this.t1 = t0 + span;
    this.listeners.forEach((f) => f());
  },
  zoom(factor, at) {
    const span = this.t1 - this.t0, c = at === undefined ? this.t0 + span / 2 : at;
    const next = span * factor;
    this.set(c - (c - this.t0) * next / span, c - (c - this.t0) * next / span + next);
  },
  fit() { this.set(0, this.T); },
};

// ---- a view: the input track, the readout and one heatmap per record, aligned on the steps ----------------------

const state = { meta: null, seq: 0, layer: 0, direction: 0, order: "index", orderRecord: null, hidden: new Set(),
  selection: null, dragFrom: null, units: [], hits: [], views: {}, ready: false };
window.addEventListener("mouseup", () => { state.dragFrom = null; });

class View {
  // `showsMatch`: the view shows the first model (whose units select-and-match found) and ticks the matched units
  constructor(element, { selectable = false, showsMatch = true } = {}) {
    this.element = element; this.selectable = selectable; this.showsMatch = showsMatch;
    this.payload = null; this.rows = {};
    viewport.listeners.push(() => this.draw());
  }

  // `partner`: a payload shown beside this one (before/after, two models): records of the same name share a scale
  show(payload, partner = null) {
    this.payload = payload;
    this.element.innerHTML = "";
    this.rows = {}; this.scales = {};
    this.addRow("input", "track", this.trackLabel());
    this.drawThumbnail();
    if (payload.readout) this.addRow("readout", "track", `<b>out</b><small>${payload.readout.label}</small>`);
    for (const [name, rec] of Object.entries(payload.records)) {
      const other = partner && partner.records[name];
      const scale = scaleOf(other ? { lo: Math.min(rec.lo, other.lo), hi: Math.max(rec.hi, other.hi) } : rec);
      this.scales[name] = scale;
      this.addRow(name, "heat", `<b>${name}</b><small>${rec.S} units</small><small>${scale.text}</small>`);
    }
    this.draw();
  }

  trackLabel() {
    const kind = this.payload.track.kind;
    return `<b>x</b><small>${kind}</small>`;
  }

  // digits: the whole image beside its pixel strip (row-major, image_width pixels a row)
  drawThumbnail() {
    const track = this.payload.track, w = track.image_width;
    if (track.kind !== "pixels" || !w) return;
    const h = Math.ceil(track.values.length / w), canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h; canvas.className = "thumb";
    const ctx = canvas.getContext("2d");
    track.values.forEach((v, t) => {
      const g = Math.round(255 * (1 - Math.max(0, Math.min(1, v))));
      ctx.fillStyle = `rgb(${g},${g},${g})`; ctx.fillRect(t % w, Math.floor(t / w), 1, 1);
    });
    this.rows.input.row.querySelector(".label").appendChild(canvas);
  }

  addRow(name, kind, label) {
    const row = document.createElement("div");
    row.className = `row ${kind === "track" ? "track" : "heatmap"}`;
    row.dataset.record = name;
    if (kind === "heat" && state.hidden.has(name)) row.style.display = "none";
    row.innerHTML = `<div class="label">${label}</div>`;
    const canvas = document.createElement("canvas");
    canvas.dataset.record = name;
    row.appendChild(canvas);
    this.element.appendChild(row);
    this.rows[name] = { row, canvas, kind };
    if (kind === "heat") this.listen(canvas, name);
    else canvas.addEventListener("wheel", (e) => this.wheel(e, canvas), { passive: false });
  }

  order(rec) {
    const S = rec.S, idx = [...Array(S).keys()];
    if (state.order === "selection") {
      const on = new Set(state.units);
      return [...idx.filter((s) => on.has(s)), ...idx.filter((s) => !on.has(s))];
    }
    if (state.order === "explain") {  // explain's ranking of this layer's units: every record with that many units
      const ranking = this.payload.ranking;
      return ranking && ranking.length === S ? [...ranking] : idx;
    }
    const key = this.payload.records[state.orderRecord] || rec;
    if (state.order === "index" || key.S !== S) return idx;
    const score = idx.map((s) => {
      let sum = 0, sq = 0;
      for (let t = 0; t < key.T; t++) { const v = key.values[t * S + s]; sum += v; sq += v * v; }
      const mean = sum / key.T;
      return state.order === "mean" ? mean : Math.sqrt(Math.max(0, sq / key.T - mean * mean));
    });
    return idx.sort((a, b) => score[b] - score[a] || a - b);
  }

  rowHeight(S) { return Math.max(3, Math.min(8, Math.floor(160 / S))); }

  draw() {
    if (!this.payload) return;
    for (const [name, { canvas, kind }] of Object.entries(this.rows)) {
      if (kind === "heat") this.drawHeatmap(canvas, this.payload.records[name], name);
      else if (name === "input") this.drawTrack(canvas);
      else this.drawReadout(canvas);
    }
  }

  size(canvas, height) {
    const dpr = window.devicePixelRatio || 1, width = canvas.clientWidth || 600;
    canvas.style.height = `${height}px`;
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, width, height };
  }

  // step under pixel column x (css px) of a canvas `width` wide
  stepAt(x, width) {
    const T = this.stepsShown();
    return Math.max(0, Math.min(T - 1, Math.floor(viewport.t0 + (x / width) * (viewport.t1 - viewport.t0))));
  }
  xOf(t, width) { return ((t - viewport.t0) / (viewport.t1 - viewport.t0)) * width; }
  stepsShown() { return Object.values(this.payload.records)[0].T; }

  drawHeatmap(canvas, rec, name) {
    const rowPx = this.rowHeight(rec.S), order = this.order(rec);
    this.rows[name].order = order; this.rows[name].rowPx = rowPx;
    const { ctx, width, height } = this.size(canvas, rec.S * rowPx);
    const dpr = canvas.width / width, W = canvas.width, H = canvas.height;
    const image = ctx.createImageData(W, H), px = new Uint32Array(image.data.buffer);
    const steps = new Int32Array(W);
    for (let x = 0; x < W; x++) steps[x] = this.stepAt((x + 0.5) / dpr, width);
    const scale = this.scales[name], lut = lookupTable(scale), line = new Uint32Array(W);
    for (let r = 0; r < rec.S; r++) {   // one colour per (unit, column), copied down the unit's pixel rows
      const unit = order[r];
      for (let x = 0; x < W; x++) line[x] = lut[lutIndex(scale, rec.values[steps[x] * rec.S + unit])];
      const y0 = Math.round(r * rowPx * dpr), y1 = Math.min(H, Math.round((r + 1) * rowPx * dpr));
      for (let y = y0; y < y1; y++) px.set(line, y * W);
    }
    ctx.putImageData(image, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const sel = state.selection;
    if (this.selectable && sel) {
      const x0 = this.xOf(sel.start, width), x1 = this.xOf(sel.stop + 1, width);
      ctx.strokeStyle = sel.record === name ? "#e07000" : "rgba(224,112,0,0.5)";
      ctx.lineWidth = sel.record === name ? 2 : 1;
      ctx.strokeRect(x0, 0.5, Math.max(2, x1 - x0), height - 1);
    }
    const selected = sel && this.payload.records[sel.record];
    if (this.showsMatch && state.units.length && selected && rec.S === selected.S) {
      ctx.fillStyle = "#e07000";   // a tick at the left edge of every matched unit's row
      order.forEach((unit, r) => { if (state.units.includes(unit)) ctx.fillRect(0, r * rowPx, 3, rowPx); });
    }
  }

  drawTrack(canvas) {
    const track = this.payload.track, T = this.stepsShown();
    const { ctx, width, height } = this.size(canvas, track.kind === "series" ? 48 : 22);
    const per = width / (viewport.t1 - viewport.t0);
    const first = Math.floor(viewport.t0), last = Math.min(T - 1, Math.ceil(viewport.t1));
    ctx.clearRect(0, 0, width, height);
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.font = "12px monospace";
    if (track.kind === "series") {
      track.values.forEach((line, k) => {
        let lo = Math.min(...line), hi = Math.max(...line);
        if (hi === lo) { hi += 1; lo -= 1; }
        ctx.strokeStyle = `hsl(${SYMBOL_HUES[k % SYMBOL_HUES.length]},60%,40%)`;
        ctx.beginPath();
        for (let t = first; t <= last; t++) {
          const x = this.xOf(t + 0.5, width), y = height - 3 - ((line[t] - lo) / (hi - lo)) * (height - 6);
          t === first ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
        }
        ctx.stroke();
      });
      return;
    }
    for (let t = first; t <= last; t++) {
      const x = this.xOf(t, width);
      if (track.kind === "pixels") {
        const g = Math.round(255 * (1 - Math.max(0, Math.min(1, track.values[t]))));
        ctx.fillStyle = `rgb(${g},${g},${g})`;
        ctx.fillRect(x, 0, Math.max(1, per), height);
      } else {
        const text = track.kind === "tokens" ? track.tokens[t] :
          track.ids[t] < 0 ? "" : track.symbols[track.ids[t]];
        const hue = track.kind === "tokens" ? 210 : SYMBOL_HUES[track.ids[t] % SYMBOL_HUES.length];
        if (text === "") continue;
        ctx.fillStyle = `hsl(${hue},60%,${per >= 8 ? 88 : 55}%)`;
        ctx.fillRect(x, 0, Math.max(1, per - (per > 4 ? 1 : 0)), height);
        if (per >= 8) {
          ctx.fillStyle = "#222";
          ctx.fillText(per >= 7 * text.length ? text : text[0], x + per / 2, height / 2);
        }
      }
    }
  }

  drawReadout(canvas) {
    const r = this.payload.readout, T = this.stepsShown();
    const { ctx, width, height } = this.size(canvas, 40);
    let [lo, hi] = r.range || [Math.min(...r.values), Math.max(...r.values)];
    if (hi === lo) { hi += 1; lo -= 1; }
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#ccc"; ctx.strokeRect(0.5, 0.5, width - 1, height - 1);
    ctx.strokeStyle = "#b03060"; ctx.lineWidth = 1.5; ctx.beginPath();
    const first = Math.floor(viewport.t0), last = Math.min(T - 1, Math.ceil(viewport.t1));
    for (let t = first; t <= last; t++) {
      const x = this.xOf(t + 0.5, width), y = height - 3 - ((r.values[t] - lo) / (hi - lo)) * (height - 6);
      t === first ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  // the record value under a mouse position, or null
  cellAt(name, e) {
    const { canvas, order, rowPx } = this.rows[name];
    const box = canvas.getBoundingClientRect();
    const t = this.stepAt(e.clientX - box.left, box.width);
    const r = Math.floor((e.clientY - box.top) / rowPx);
    const rec = this.payload.records[name];
    if (r < 0 || r >= rec.S) return null;
    return { record: name, unit: order[r], step: t, value: rec.values[t * rec.S + order[r]] };
  }

  // where (client px) the centre of cell (unit, step) of a record is drawn: for tests and for scripted hovering
  cellCentre(name, unit, step) {
    const { canvas, order, rowPx } = this.rows[name];
    const box = canvas.getBoundingClientRect();
    return { x: box.left + this.xOf(step + 0.5, box.width), y: box.top + (order.indexOf(unit) + 0.5) * rowPx };
  }

  listen(canvas, name) {
    const tip = document.getElementById("tooltip");
    canvas.addEventListener("mousemove", (e) => {
      const cell = this.cellAt(name, e);
      if (!cell) { tip.style.display = "none"; return; }
      const track = this.payload.track;
      const input = track.kind === "symbols" ? (track.ids[cell.step] < 0 ? "(none)" : track.symbols[track.ids[cell.step]]) :
        track.kind === "tokens" ? track.tokens[cell.step] :
        track.kind === "pixels" ? track.values[cell.step] : track.values.map((line) => line[cell.step]).join(", ");
      tip.textContent = `${name}[step ${cell.step}, unit ${cell.unit}] = ${cell.value}\ninput: ${input}`;
      Object.assign(tip.dataset, { record: name, unit: cell.unit, step: cell.step, value: String(cell.value) });
      tip.style.display = "block";
      tip.style.left = `${e.clientX + 14}px`; tip.style.top = `${e.clientY + 14}px`;
      const from = state.dragFrom;
      if (from !== null && this.selectable) {
        setSelection({ record: name, start: Math.min(from, cell.step), stop: Math.max(from, cell.step) });
      }
    });
    canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    if (this.selectable) {
      canvas.addEventListener("mousedown", (e) => {
        const cell = this.cellAt(name, e);
        if (!cell) return;
        state.dragFrom = cell.step;
        setSelection({ record: name, start: cell.step, stop: cell.step });
        e.preventDefault();
      });
    }
    canvas.addEventListener("wheel", (e) => this.wheel(e, canvas), { passive: false });
  }

  wheel(e, canvas) {
    e.preventDefault();
    const box = canvas.getBoundingClientRect();
    const span = viewport.t1 - viewport.t0;
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      const d = (e.shiftKey ? e.deltaY : e.deltaX) / box.width * span;
      viewport.set(viewport.t0 + d, viewport.t1 + d);
    } else {
      const at = viewport.t0 + ((e.clientX - box.left) / box.width) * span;
      viewport.zoom(e.deltaY > 0 ? 1.25 : 0.8, at);
    }
  }
}

// ---- the page ----------------------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function showError(err) {
  const box = $("error");
  box.textContent = String(err.message || err);
  box.style.display = "block";
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.style.display = "none"; }, 8000);
}

function setSelection(sel) {
  state.selection = sel;
  $("selection-label").textContent = `selected: ${sel.record}, steps ${sel.start}..${sel.stop} of sequence ${state.seq}`;
  $("iv-start").value = sel.start; $("iv-stop").value = sel.stop; $("iv-record").value = sel.record;
  state.views.main.draw();
}

async function loadMain() {
  const { seq, layer, direction } = state;
  const payload = await getSequence(0, seq, layer, direction);
  state.views.main.show(payload);
  $("subject-name").textContent = state.meta.subjects[0].name +
    (payload.readout ? ` — ${payload.readout.summary}` : "");
  if (state.meta.subjects.length > 1) await loadCompare();
  state.ready = true;
}

async function loadCompare() {
  const { seq, layer, direction } = state;
  const payloads = [];
  for (const k of [0, 1]) {
    const m = state.meta.subjects[k];
    payloads.push(await getSequence(k, seq, Math.min(layer, m.layers - 1), Math.min(direction, m.directions - 1)));
  }
  for (const [k, side] of [[0, "a"], [1, "b"]]) {
    const p = payloads[k];
    $(`compare-${side}-name`).textContent = state.meta.subjects[k].name;
    $(`compare-${side}-summary`).textContent = p.readout ? p.readout.summary : "";
    state.views[`compare${side.toUpperCase()}`].show(p, payloads[1 - k]);
  }
}

async function runMatch() {
  const sel = state.selection;
  if (!sel) { showError("select a step range first: drag across a heatmap"); return; }
  const req = { subject: 0, seq: state.seq, layer: state.layer, direction: state.direction, record: sel.record,
    start: sel.start, stop: sel.stop, threshold: Number($("threshold").value), top: 20 };
  $("match-status").textContent = "matching…";
  try {
    const result = EMBEDDED ? await matchRanges(req, state.meta.match_sequences) : await getJSON("api/match", req);
    state.units = result.units; state.hits = result.hits; state.lastMatch = { req, result };
    $("match-status").textContent = `${result.hits.length} ranges over ${state.meta.match_sequences} sequences`;
    $("match-units").textContent = `${result.units.length} units on: ${result.units.join(", ")}`;
    $("iv-units").value = result.units.join(",");
    await showHits(req, result);
    state.views.main.draw();
  } catch (err) {
    $("match-status").textContent = ""; showError(err);
  }
}

// each hit: its input and the matched units' values, aligned at the hit's first step with `context` steps around
async function showHits(req, result) {
  const box = $("match-hits");
  box.innerHTML = "";
  const context = 8, L = req.stop - req.start + 1, span = L + 2 * context;
  for (const hit of result.hits) {
    const p = await getSequence(0, hit.seq, req.layer, req.direction);
    const rec = p.records[req.record];
    const div = document.createElement("div");
    div.className = "hit" + (hit.seq === req.seq && hit.start === req.start ? " query" : "");
    div.dataset.seq = hit.seq; div.dataset.start = hit.start; div.dataset.score = hit.score;
    div.innerHTML = `<div class="hit-label">sequence ${hit.seq}, steps ${hit.start}..${hit.stop}: ` +
      `score ${hit.score.toFixed(3)} (${hit.units_on}/${result.units.length} units on)</div>`;
    const canvas = document.createElement("canvas");
    div.appendChild(canvas); box.appendChild(div);
    const cell = 300 / span, rows = result.units.length, rowPx = Math.max(2, Math.min(5, Math.floor(60 / rows)));
    const trackH = 14;
    canvas.width = 300; canvas.height = trackH + rows * rowPx;
    canvas.style.height = `${canvas.height}px`;
    const ctx = canvas.getContext("2d");
    const scale = scaleOf(rec);
    ctx.font = "10px monospace"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (let k = 0; k < span; k++) {
      const t = hit.start - context + k;
      if (t < 0 || t >= rec.T) continue;
      const x = k * cell, tr = p.track;
      if (tr.kind === "symbols" && tr.ids[t] >= 0) {
        ctx.fillStyle = `hsl(${SYMBOL_HUES[tr.ids[t] % SYMBOL_HUES.length]},60%,85%)`;
        ctx.fillRect(x, 0, cell, trackH); ctx.fillStyle = "#222";
        ctx.fillText(tr.symbols[tr.ids[t]], x + cell / 2, trackH / 2);
      } else if (tr.kind === "tokens") {
        ctx.fillStyle = "#222"; ctx.fillText(tr.tokens[t][0] || "", x + cell / 2, trackH / 2);
      } else if (tr.kind === "pixels") {
        const g = Math.round(255 * (1 - tr.values[t])); ctx.fillStyle = `rgb(${g},${g},${g})`;
        ctx.fillRect(x, 0, cell, trackH);
      }
      result.units.forEach((unit, r) => {
        const [cr, cg, cb] = colour(scale, rec.values[t * rec.S + unit]);
        ctx.fillStyle = `rgb(${cr},${cg},${cb})`;
        ctx.fillRect(x, trackH + r * rowPx, Math.ceil(cell), rowPx);
      });
    }
    ctx.strokeStyle = "#e07000";
    ctx.strokeRect(context * cell, 0.5, L * cell, canvas.height - 1);
    div.addEventListener("click", async () => {
      state.seq = hit.seq; $("seq").value = hit.seq;
      await loadMain();
      viewport.set(hit.start - 2 * context, hit.stop + 1 + 2 * context);
      setSelection({ record: req.record, start: hit.start, stop: hit.stop });
    });
  }
}

async function runIntervention() {
  const kind = $("iv-kind").value;
  const text = $("iv-units").value.trim();
  const units = text === "all" ? "all" : text.split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  const req = { subject: 0, seq: state.seq, layer: state.layer, direction: state.direction,
    record: $("iv-record").value, units, start: Number($("iv-start").value), stop: Number($("iv-stop").value),
    kind: kind === "ablate-mean" ? "ablate" : kind, mean: kind === "ablate-mean",
    value: Number($("iv-value").value), source: Number($("iv-source").value) };
  $("iv-status").textContent = "running…";
  try {
    const result = await getJSON("api/intervene", req);
    const before = decodePayload(result.before), after = decodePayload(result.after);
    state.intervention = { req, before, after };
    state.views.before.show(before, after);
    showAfter();
    $("iv-before-summary").textContent = before.readout ? before.readout.summary : "";
    $("iv-after-summary").textContent = after.readout ? after.readout.summary : "";
    $("iv-status").textContent = `${req.kind} ${req.record}, units ${text}, steps ${req.start}..${req.stop}`;
  } catch (err) {
    $("iv-status").textContent = ""; showError(err);
  }
}

// the after column: the intervened run, or its difference from the run before (checkbox "after − before")
function showAfter() {
  const iv = state.intervention;
  if (!iv) return;
  if (!$("iv-diff").checked) { state.views.after.show(iv.after, iv.before); return; }
  const records = {};
  for (const [name, a] of Object.entries(iv.after.records)) {
    const b = iv.before.records[name], values = new Float32Array(a.values.length);
    let lo = 0, hi = 0;
    for (let k = 0; k < values.length; k++) {
      values[k] = a.values[k] - b.values[k];
      lo = Math.min(lo, values[k]); hi = Math.max(hi, values[k]);
    }
    records[name] = { T: a.T, S: a.S, values, lo: hi === 0 && lo === 0 ? -1 : Math.min(lo, -hi), hi };
  }
  state.views.after.show({ ...iv.after, records });
}

function switchTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("active", s.id === name));
  Object.values(state.views).forEach((v) => v.draw());
}

function updateViewportLabel() {
  const span = viewport.t1 - viewport.t0;
  $("pan").max = Math.max(0, Math.round(viewport.T - span)); $("pan").value = Math.round(viewport.t0);
  $("viewport-label").textContent = `steps ${Math.floor(viewport.t0)}..${Math.ceil(viewport.t1) - 1} of ${viewport.T}`;
}

async function init() {
  state.meta = await getMeta();
  const m = state.meta.subjects[0];
  state.orderRecord = m.records.includes("c") ? "c" : "h";
  if (m.ranking) state.order = "explain";  // explain's ranking is the default order when the run has one
  else $("order").querySelector('option[value="explain"]').remove();
  $("order").value = state.order;
  viewport.T = m.steps; viewport.t0 = 0; viewport.t1 = m.steps;
  viewport.listeners.push(updateViewportLabel);
  state.views.main = new View($("main-view"), { selectable: true });
  state.views.before = new View($("iv-before")); state.views.after = new View($("iv-after"));
  state.views.compareA = new View($("compare-a"));
  state.views.compareB = new View($("compare-b"), { showsMatch: false });
  $("seq").max = m.sequences - 1;
  $("seq-count").textContent = `of ${state.meta.mode === "file" ? state.meta.match_sequences : m.sequences}`;
  $("layer").innerHTML = [...Array(m.layers).keys()].map((l) => `<option value="${l}">${l}</option>`).join("");
  $("direction").innerHTML = [...Array(m.directions).keys()]
    .map((d) => `<option value="${d}">${d ? "reverse" : "forward"}</option>`).join("");
  const options = m.records.map((r) => `<option value="${r}">${r}</option>`).join("");
  $("order-record").innerHTML = options; $("order-record").value = state.orderRecord;
  $("iv-record").innerHTML = options; $("iv-record").value = state.orderRecord;
  $("record-toggles").innerHTML = m.records
    .map((r) => `<label><input type="checkbox" data-record="${r}" checked>${r}</label>`).join("");
  $("tab-intervene").hidden = state.meta.mode === "file";
  $("tab-compare").hidden = state.meta.subjects.length < 2;

  const reload = () => loadMain().catch(showError);
  $("seq").addEventListener("change", () => {
    const seq = Number($("seq").value);
    if (seq === state.seq) return;  // (a blur fires "change" again with the same value)
    state.seq = seq; state.selection = null; reload();
  });
  $("layer").addEventListener("change", () => { state.layer = Number($("layer").value); reload(); });
  $("direction").addEventListener("change", () => { state.direction = Number($("direction").value); reload(); });
  $("order").addEventListener("change", () => { state.order = $("order").value; state.views.main.draw(); });
  $("order-record").addEventListener("change", () => {
    state.orderRecord = $("order-record").value; state.views.main.draw();
  });
  $("record-toggles").addEventListener("change", (e) => {
    const r = e.target.dataset.record;
    e.target.checked ? state.hidden.delete(r) : state.hidden.add(r);
    Object.values(state.views).forEach((v) => {
      if (v.rows[r]) v.rows[r].row.style.display = e.target.checked ? "" : "none";
      v.draw();
    });
  });
  $("zoom-in").addEventListener("click", () => viewport.zoom(0.5));
  $("zoom-out").addEventListener("click", () => viewport.zoom(2));
  $("zoom-fit").addEventListener("click", () => viewport.fit());
  $("pan").addEventListener("input", () => {
    const span = viewport.t1 - viewport.t0, t0 = Number($("pan").value);
    viewport.set(t0, t0 + span);
  });
  $("match-run").addEventListener("click", runMatch);
  $("iv-run").addEventListener("click", runIntervention);
  $("iv-diff").addEventListener("change", showAfter);
  const kindChanged = () => {
    $("iv-value-label").style.display = $("iv-kind").value === "clamp" ? "" : "none";
    $("iv-source-label").style.display = $("iv-kind").value === "patch" ? "" : "none";
  };
  $("iv-kind").addEventListener("change", kindChanged); kindChanged();
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => switchTab(b.dataset.tab)));
  window.addEventListener("resize", () => Object.values(state.views).forEach((v) => v.draw()));
  updateViewportLabel();
  await loadMain();
}

window.explorer = { state, viewport, getSequence, matchRanges, runMatch, runIntervention, setSelection, switchTab,
  loadMain };
init().catch(showError);
