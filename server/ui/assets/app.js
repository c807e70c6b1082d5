// The anerd dashboard: plain JS, no libraries. Data: JSON snapshots (/api/...) and the
// server-sent-event stream /api/stream (frames "sessions", "events", "status"; server/ui/ui_hub.h).
// Every event carries its seq; events are merged by seq, so history read after the stream opened
// and the stream itself may overlap without double points.
'use strict';

const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
if (token) history.replaceState(null, '', location.pathname);  // keep the token out of the bar
const withToken = (url) => token ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : url;
const api = (path) => fetch(withToken(path), {cache: 'no-store'}).then((r) => r.ok ? r.json() : r.json().then((e) => Promise.reject(new Error(e.error || r.status))));

const KIND = {STEP: 0, STATE: 1, CHECKPOINT: 2, WARNING: 3, EVAL: 4, SAMPLE: 5};
// Step fields that are not phases of the step's time (a phase is any other numeric *_ms field).
// *_ms step fields that are not a slice of the step: totals, waits, parts of kernel_ms (the device's
// own time, the forward/backward split), the run's compile time, and the per-rank step times.
const NOT_PHASES = new Set(['step_ms', 'queued_ms', 'kernel_hw_ms', 'kernel_fwd_ms', 'kernel_bwd_ms',
                            'compile_ms', 'slowest_rank_ms', 'fastest_rank_ms']);
const HISTORY = 5000;  // events read per session when the page opens (kMaxEventsPerPage)
const PHASE_COLORS = ['#2563eb', '#f59e0b', '#10b981', '#8b5cf6', '#ef4444', '#06b6d4', '#84cc16',
                      '#ec4899', '#64748b', '#a16207', '#0f766e', '#7c3aed'];

const state = {sessions: [], data: new Map(), selected: null, dropped: 0, loaded: new Set()};

function num(v) {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}
function fmt(v, digits = 4) {
  const n = num(v);
  if (n === null) return '–';
  if (n !== 0 && (Math.abs(n) >= 1e5 || Math.abs(n) < 1e-3)) return n.toExponential(2);
  return Number(n.toPrecision(digits)).toString();
}
function el(tag, attrs = {}, text = '') {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== '') e.textContent = text;
  return e;
}
function svgEl(tag, attrs = {}) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function duration(s) {
  const n = num(s);
  if (n === null || n <= 0) return '–';
  if (n < 120) return n.toFixed(0) + ' s';
  if (n < 7200) return (n / 60).toFixed(0) + ' min';
  return (n / 3600).toFixed(1) + ' h';
}

function sessionData(id) {
  if (!state.data.has(id)) state.data.set(id, {events: new Map(), next: 0});
  return state.data.get(id);
}

function merge(id, events) {
  const d = sessionData(id);
  let changed = false;
  for (const e of events) {
    if (!d.events.has(e.seq)) { d.events.set(e.seq, e); changed = true; }
    d.next = Math.max(d.next, e.seq + 1);
  }
  if (changed && id === state.selected) scheduleRender();
}

async function loadHistory(id) {
  try {
    const page = await api(`/api/sessions/${encodeURIComponent(id)}/events?max=${HISTORY}`);
    merge(id, page.events);
    state.loaded.add(id);
  } catch (err) {
    console.warn('history of', id, err);
  }
}

// ---- charts -------------------------------------------------------------------------------

function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
  const mult = [1, 2, 5, 10].find((m) => (hi - lo) / (step * m) <= n) || 10;
  const s = step * mult;
  const out = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + s * 1e-9; v += s) out.push(Number(v.toPrecision(12)));
  return out;
}

// Line chart of `series` [{points: [[x, y]...], color}] into `svg`; returns the points plotted.
function lineChart(svg, series) {
  svg.replaceChildren();
  const W = svg.clientWidth || 400, H = svg.clientHeight || 170;
  const pad = {l: 48, r: 8, t: 8, b: 20};
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    svg.appendChild(svgEl('text', {x: W / 2 - 30, y: H / 2})).textContent = 'no data yet';
    return 0;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  const X = (x) => pad.l + (x - x0) / (x1 - x0) * (W - pad.l - pad.r);
  const Y = (y) => H - pad.b - (y - y0) / (y1 - y0) * (H - pad.t - pad.b);
  for (const t of ticks(y0, y1, 4)) {
    svg.appendChild(svgEl('line', {x1: pad.l, x2: W - pad.r, y1: Y(t), y2: Y(t), stroke: '#e5e7eb'}));
    svg.appendChild(svgEl('text', {x: 2, y: Y(t) + 3})).textContent = fmt(t, 3);
  }
  for (const t of ticks(x0, x1, 6)) {
    svg.appendChild(svgEl('text', {x: X(t) - 8, y: H - 5})).textContent = fmt(t, 6);
  }
  let plotted = 0;
  for (const s of series) {
    if (s.points.length === 0) continue;
    const stride = Math.max(1, Math.floor(s.points.length / 2000));  // at most ~2000 vertices
    const pts = s.points.filter((_, i) => i % stride === 0 || i === s.points.length - 1);
    svg.appendChild(svgEl('polyline', {
      points: pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' '),
      fill: 'none', stroke: s.color, 'stroke-width': 1.5}));
    if (s.dots) {
      for (const p of pts) svg.appendChild(svgEl('circle', {cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: s.color}));
    }
    plotted += s.points.length;
  }
  return plotted;
}

// Stacked bars of every phase field of the last steps.
function breakdownChart(svg, legend, steps) {
  svg.replaceChildren();
  legend.replaceChildren();
  const recent = steps.slice(-60);
  const phases = [];
  for (const s of recent) {
    for (const [k, v] of Object.entries(s)) {
      if (k.endsWith('_ms') && !NOT_PHASES.has(k) && num(v) !== null && !phases.includes(k)) phases.push(k);
    }
  }
  svg.setAttribute('data-phases', phases.join(','));
  const W = svg.clientWidth || 600, H = svg.clientHeight || 200;
  const pad = {l: 48, r: 8, t: 8, b: 20};
  if (recent.length === 0) return;
  const rows = recent.map((s) => {
    const parts = phases.map((p) => Math.max(0, num(s[p]) || 0));
    const sum = parts.reduce((a, b) => a + b, 0);
    const other = Math.max(0, (num(s.step_ms) || 0) - sum);
    return {step: s.step, parts: parts.concat([other]), total: Math.max(sum + other, 1e-9)};
  });
  const names = phases.concat(['other']);
  const yMax = Math.max(...rows.map((r) => r.total));
  const bw = (W - pad.l - pad.r) / rows.length;
  const Y = (v) => (v / yMax) * (H - pad.t - pad.b);
  for (const t of ticks(0, yMax, 4)) {
    svg.appendChild(svgEl('text', {x: 2, y: H - pad.b - Y(t) + 3})).textContent = fmt(t, 3);
  }
  rows.forEach((r, i) => {
    let base = H - pad.b;
    r.parts.forEach((v, j) => {
      const h = Y(v);
      if (h <= 0) return;
      base -= h;
      const rect = svgEl('rect', {x: pad.l + i * bw + 1, y: base, width: Math.max(bw - 2, 1), height: h,
                                  fill: j < phases.length ? PHASE_COLORS[j % PHASE_COLORS.length] : '#cbd5e1'});
      rect.appendChild(svgEl('title')).textContent = `step ${r.step} ${names[j]}: ${fmt(v)} ms`;
      svg.appendChild(rect);
    });
  });
  svg.appendChild(svgEl('text', {x: pad.l, y: H - 5})).textContent = `step ${rows[0].step}`;
  svg.appendChild(svgEl('text', {x: W - pad.r - 60, y: H - 5})).textContent = `step ${rows[rows.length - 1].step}`;
  const last = rows[rows.length - 1];
  names.forEach((n, j) => {
    const span = el('span');
    const swatch = el('i');
    swatch.style.background = j < phases.length ? PHASE_COLORS[j % PHASE_COLORS.length] : '#cbd5e1';
    span.append(swatch, `${n.replace(/_ms$/, '')} ${fmt(last.parts[j], 3)}`);
    legend.appendChild(span);
  });
}

// ---- rendering ----------------------------------------------------------------------------

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderSession(); });
}

function renderSessions() {
  const body = document.querySelector('#sessions tbody');
  body.replaceChildren();
  document.getElementById('no-sessions').hidden = state.sessions.length > 0;
  for (const s of state.sessions) {
    const tr = el('tr', {'data-id': s.id});
    if (s.id === state.selected) tr.className = 'selected';
    tr.append(el('td', {}, s.id), el('td', {}, s.name || ''), el('td', {class: 'state-' + s.state}, s.state),
              el('td', {}, `${s.step}/${s.total_steps}`), el('td', {}, fmt(s.last_loss)),
              el('td', {}, fmt(s.best_val_loss)), el('td', {}, s.backend));
    tr.addEventListener('click', () => select(s.id));
    body.appendChild(tr);
  }
}

function select(id) {
  state.selected = id;
  renderSessions();
  if (!state.loaded.has(id)) loadHistory(id);
  scheduleRender();
}

function renderSession() {
  const s = state.sessions.find((x) => x.id === state.selected);
  if (!s) return;
  document.getElementById('session-title').textContent = `Session ${s.id}${s.name ? ' · ' + s.name : ''}`;
  const m = s.model || {};
  document.getElementById('session-summary').textContent =
    `${s.state} · step ${s.step} of ${s.total_steps} · ${m.name || 'model'} (dim ${m.dim}, ${m.layers} layers, vocab ${m.vocab}, seq ${m.seq}) on ${s.backend}` +
    ` · elapsed ${duration(s.elapsed_seconds)} · eta ${duration(s.eta_seconds)}` + (s.error ? ` · ${s.error}` : '');
  const events = [...sessionData(s.id).events.values()].sort((a, b) => a.seq - b.seq);
  const steps = events.filter((e) => e.kind === KIND.STEP && e.step).map((e) => e.step);
  const evals = events.filter((e) => e.kind === KIND.EVAL && e.eval).map((e) => e.eval);
  const samples = events.filter((e) => e.kind === KIND.SAMPLE && e.sample).map((e) => e.sample);
  const series = (field) => steps.map((x) => [x.step, num(x[field])]).filter((p) => p[1] !== null);
  const loss = document.getElementById('loss-chart');
  const train = series('loss');
  const val = evals.map((e) => [e.step, num(e.loss)]).filter((p) => p[1] !== null);
  lineChart(loss, [{points: train, color: 'var(--train)'}, {points: val, color: 'var(--val)', dots: true}]);
  loss.setAttribute('data-points', train.length);
  loss.setAttribute('data-val-points', val.length);
  for (const [id, field] of [['lr-chart', 'lr'], ['grad-chart', 'grad_norm'], ['tps-chart', 'tokens_per_s']]) {
    const svg = document.getElementById(id);
    const pts = series(field);
    lineChart(svg, [{points: pts, color: 'var(--accent)'}]);
    svg.setAttribute('data-points', pts.length);
  }
  breakdownChart(document.getElementById('breakdown-chart'), document.getElementById('breakdown-legend'), steps);
  renderLatest(steps[steps.length - 1]);
  renderSamples(samples.length ? samples : (s.last_sample ? [s.last_sample] : []));
}

function renderLatest(step) {
  const body = document.querySelector('#latest-step tbody');
  body.replaceChildren();
  if (!step) return;
  for (const [k, v] of Object.entries(step)) {  // every field of the step event, new ones too
    if (typeof v === 'object') continue;
    body.appendChild(el('tr')).append(el('td', {}, k), el('td', {}, typeof v === 'boolean' ? String(v) : fmt(v, 6)));
  }
}

function renderSamples(samples) {
  const box = document.getElementById('samples');
  if (samples.length === 0) return;
  box.replaceChildren();
  for (const x of samples.slice(-5).reverse()) {
    const div = el('div', {class: 'sample'});
    div.append(el('div', {class: 'muted'}, `step ${x.step} · ${x.tokens} tokens`),
               el('span', {class: 'prompt'}, x.prompt || ''), document.createTextNode(x.text || ''));
    box.appendChild(div);
  }
}

function renderStatus(info) {
  document.getElementById('daemon').textContent =
    `${info.version} · ${info.os} · up ${duration(info.uptime_seconds)} · default backend ${info.default_backend}`;
  const ui = info.ui || {};
  const dropped = document.getElementById('dropped');
  dropped.textContent = `dropped frames: ${ui.client_dropped || 0} (all pages ${ui.dropped_total || 0})`;
  dropped.setAttribute('data-dropped', ui.client_dropped || 0);
  dropped.className = 'badge' + ((ui.client_dropped || 0) > 0 ? ' warn' : '');
  if ((ui.client_dropped || 0) > state.dropped && state.selected) loadHistory(state.selected);  // refill gaps
  state.dropped = ui.client_dropped || 0;
  const backends = document.querySelector('#backends tbody');
  backends.replaceChildren();
  for (const b of info.backends || []) {
    backends.appendChild(el('tr')).append(el('td', {}, b.name + (b.default ? ' (default)' : '')), el('td', {}, b.device),
      el('td', {}, b.version), el('td', {}, b.compile_budget ? `${b.compiles_used}/${b.compile_budget}` : String(b.compiles_used)));
  }
  for (const u of info.unavailable_backends || []) {
    backends.appendChild(el('tr')).append(el('td', {}, u.name), el('td', {class: 'muted', colspan: 3}, 'unavailable: ' + u.reason));
  }
  const workers = document.querySelector('#workers tbody');
  workers.replaceChildren();
  document.getElementById('no-workers').hidden = (info.workers || []).length > 0;
  for (const w of info.workers || []) {
    workers.appendChild(el('tr')).append(el('td', {}, w.backend), el('td', {}, String(w.pid)), el('td', {}, String(w.generation)),
      el('td', {}, w.activity), el('td', {}, String(w.restarts)), el('td', {}, String(w.crashes)), el('td', {}, duration(w.uptime_seconds)));
  }
  const cache = document.querySelector('#cache tbody');
  cache.replaceChildren();
  const c = info.cache || {};
  for (const k of ['kernels_stored', 'entries', 'bytes', 'hits', 'misses', 'evictions']) {
    cache.appendChild(el('tr')).append(el('td', {}, 'cache ' + k), el('td', {}, String(c[k] ?? '–')));
  }
}

// Bars of each stored probe result's rows (TFLOPS where measured, else ms per evaluation).
function renderProbes(list) {
  const box = document.getElementById('probes');
  if (!list.length) return;
  box.replaceChildren();
  for (const p of list.slice(0, 6)) {
    const rows = p.rows || [];
    const metric = ['tflops', 'ms_per_eval', 'p50_us'].find((k) => rows.some((r) => num(r[k]))) || 'tflops';
    const fig = el('figure');
    fig.appendChild(el('figcaption', {}, `${p.options?.probe || rows[0]?.probe || 'probe'} · ${p.fingerprint?.backend || ''} · ${p.id} · ${metric}`));
    const svg = svgEl('svg', {class: 'chart'});
    fig.appendChild(svg);
    box.appendChild(fig);
    const W = svg.clientWidth || 400, H = svg.clientHeight || 170, pad = {l: 48, b: 20, t: 8};
    const vals = rows.map((r) => num(r[metric]) || 0);
    const max = Math.max(...vals, 1e-12);
    const bw = (W - pad.l - 8) / Math.max(rows.length, 1);
    for (const t of ticks(0, max, 4)) {
      svg.appendChild(svgEl('text', {x: 2, y: H - pad.b - t / max * (H - pad.t - pad.b) + 3})).textContent = fmt(t, 3);
    }
    rows.forEach((r, i) => {
      const h = vals[i] / max * (H - pad.t - pad.b);
      const rect = svgEl('rect', {x: pad.l + i * bw + 1, y: H - pad.b - h, width: Math.max(bw - 2, 1), height: h, fill: '#2563eb'});
      rect.appendChild(svgEl('title')).textContent = `${r.config} ${r.variant || ''}: ${fmt(vals[i])} ${metric}`;
      svg.appendChild(rect);
      if (rows.length <= 12) {
        svg.appendChild(svgEl('text', {x: pad.l + i * bw + 3, y: H - 6})).textContent =
          `${r.config} ${r.variant || ''}`.slice(0, Math.max(4, Math.floor(bw / 6)));
      }
    });
  }
}

// ---- data flow ----------------------------------------------------------------------------

function onSessions(list) {
  state.sessions = list;
  if (!state.selected || !list.some((s) => s.id === state.selected)) {
    const live = list.find((s) => ['running', 'compiling', 'queued'].includes(s.state));
    if (live || list.length) select((live || list[list.length - 1]).id);
  }
  renderSessions();
  scheduleRender();
}

function connect() {
  const stream = new EventSource(withToken('/api/stream'));
  const badge = document.getElementById('stream');
  stream.onopen = () => {
    badge.textContent = 'stream: live';
    badge.className = 'badge ok';
    // Registered now: history read from here on overlaps the stream, never leaves a gap.
    state.loaded.clear();
    api('/api/sessions').then((d) => onSessions(d.sessions)).then(() => state.selected && loadHistory(state.selected));
  };
  stream.onerror = () => { badge.textContent = 'stream: reconnecting'; badge.className = 'badge warn'; };
  stream.addEventListener('sessions', (m) => onSessions(JSON.parse(m.data).sessions));
  stream.addEventListener('events', (m) => { const d = JSON.parse(m.data); merge(d.session, d.events); });
  stream.addEventListener('status', (m) => renderStatus(JSON.parse(m.data)));
}

api('/api/info').then(renderStatus).catch((e) => { document.getElementById('daemon').textContent = 'error: ' + e.message; });
api('/api/probes?limit=6').then((d) => renderProbes(d.probes)).catch(() => {});
setInterval(() => api('/api/probes?limit=6').then((d) => renderProbes(d.probes)).catch(() => {}), 30000);
connect();
