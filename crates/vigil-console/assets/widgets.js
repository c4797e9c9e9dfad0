// Widgets of a dashboard body, each drawn into its grid cell. Every value
// from the server is set as text (textContent or text nodes), never parsed
// as HTML: log messages, alarm reasons and labels are hostile input.

import { get, post } from './api.js';
import { fitPeriod, formatNumber, formatTime } from './time.js';

/** Okabe–Ito: eight colours that colour-blind readers tell apart. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#F0E442'];

/** `el('p', {class: 'x'}, 'text', child)`: an element; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) throw new Error('no inline handlers');
    node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

/**
 * `#/PATH?...` keeping the view's range, time zone and refresh from the
 * current URL, so a link opens the same view of another page; `extra` adds
 * parameters.
 */
export function viewHref(path, extra = {}) {
  const current = new URLSearchParams(location.hash.split('?')[1] || '');
  const q = new URLSearchParams();
  for (const k of ['range', 'start', 'end', 'tz', 'refresh']) if (current.has(k)) q.set(k, current.get(k));
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const text = q.toString();
  return `#/${path}${text ? `?${text}` : ''}`;
}

/** Expands `"."` (the previous row's value at the same position). */
export function expandRows(rows) {
  const out = [];
  let previous = [];
  for (const row of rows) {
    const last = row[row.length - 1];
    const options = last && typeof last === 'object' && !Array.isArray(last) ? last : {};
    const strings = options === last ? row.slice(0, -1) : row.slice();
    if (options.expression !== undefined) {
      out.push({ options, strings: [] });
      continue;
    }
    const expanded = strings.map((s, i) => (s === '.' ? previous[i] : s));
    previous = expanded;
    out.push({ options, strings: expanded });
  }
  return out;
}

/** The metric-math request of a metric widget. */
export function metricQueries(props, range) {
  const rows = expandRows(props.metrics || []);
  const period = fitPeriod(props.period || 300, range[0], range[1]);
  const queries = rows.map(({ options, strings }, i) => {
    const id = options.id || `m${i}`;
    const label = options.label;
    const returnData = options.visible !== false;
    if (options.expression !== undefined) {
      return { id, expression: options.expression, label, return_data: returnData };
    }
    const dimensions = {};
    for (let j = 2; j + 1 < strings.length; j += 2) dimensions[strings[j]] = strings[j + 1];
    return {
      id,
      label: label || `${strings[1]}${options.stat ? ' ' + options.stat : ''}`,
      return_data: returnData,
      metric_stat: {
        namespace: strings[0],
        metric_name: strings[1],
        dimensions,
        period: fitPeriod(options.period || period, range[0], range[1]),
        stat: options.stat || props.stat || 'Average',
      },
    };
  });
  return { period, queries, rows };
}

/** A single value over the range: totals for sums and counts, else the latest point. */
export function singleValue(result, stat, wholeRange) {
  const values = result.values || [];
  if (!values.length) return null;
  if (wholeRange) {
    if (stat === 'Sum' || stat === 'SampleCount') return values.reduce((a, b) => a + b, 0);
    if (stat === 'Maximum') return Math.max(...values);
    if (stat === 'Minimum') return Math.min(...values);
  }
  const order = (result.timestamps || []).map((t, i) => [t, i]).sort((a, b) => a[0] - b[0]);
  return values[order[order.length - 1][1]];
}

function title(widget, fallback) {
  return (widget.properties && widget.properties.title) || fallback;
}

async function fetchMetric(props, ctx) {
  const { period, queries, rows } = metricQueries(props, ctx.range);
  const answer = await post('/api/metrics/query', {
    metrics: queries, start: ctx.range[0], end: ctx.range[1], period,
  });
  const results = answer.results || [];
  const options = queries.filter((q) => q.return_data).map((q) => rows[queries.indexOf(q)].options);
  return { results, options, period };
}

function drawSingle(body, props, results, options) {
  const wholeRange = props.setPeriodToTimeRange === true;
  const list = el('div', { class: 'single' });
  results.forEach((r, i) => {
    const o = options[i] || {};
    const stat = o.expression !== undefined ? 'expression' : o.stat || props.stat || 'Average';
    const value = singleValue(r, stat, wholeRange);
    list.append(el('div', { class: 'single-item' },
      el('span', { class: 'single-value', 'data-testid': 'single-value' }, formatNumber(value)),
      el('span', { class: 'single-label' }, r.label)));
  });
  if (!results.length) list.append(el('span', { class: 'empty' }, 'no data'));
  body.append(list);
}

function drawGauge(body, props, results) {
  const left = (props.yAxis && props.yAxis.left) || {};
  for (const r of results) {
    const value = singleValue(r, props.stat || 'Average', props.setPeriodToTimeRange === true);
    const meter = el('meter', { min: left.min, max: left.max, value: value ?? left.min, 'aria-label': r.label });
    body.append(el('div', { class: 'gauge' }, meter,
      el('span', { class: 'single-value' }, formatNumber(value)), el('span', { class: 'single-label' }, r.label)));
  }
}

function drawBars(body, props, results) {
  const values = results.map((r) => singleValue(r, props.stat || 'Average', props.setPeriodToTimeRange === true) || 0);
  const max = Math.max(1e-12, ...values.map(Math.abs));
  results.forEach((r, i) => {
    const bar = el('span', { class: 'bar-fill' });
    bar.style.width = `${(100 * Math.abs(values[i])) / max}%`;
    bar.style.background = PALETTE[i % PALETTE.length];
    body.append(el('div', { class: 'bar-row' }, el('span', { class: 'bar-label' }, r.label), bar,
      el('span', { class: 'bar-value' }, formatNumber(values[i]))));
  });
}

/** uPlot's data: one x array (seconds) and a y array per series, null where a series has no point. */
export function alignSeries(results) {
  const xs = [...new Set(results.flatMap((r) => r.timestamps || []))].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const ys = results.map((r) => {
    const y = new Array(xs.length).fill(null);
    (r.timestamps || []).forEach((t, i) => { y[index.get(t)] = r.values[i]; });
    return y;
  });
  return [xs.map((t) => t / 1000), ...ys];
}

/** The y range: the axis' min/max when set, else the data and the annotations, never empty. */
export function yRange(min, max, axis, horizontal) {
  const values = horizontal.map((h) => h.value).filter((v) => typeof v === 'number');
  let lo = axis.min ?? Math.min(min ?? 0, ...values);
  let hi = axis.max ?? Math.max(max ?? 0, ...values);
  if (!Number.isFinite(lo)) lo = 0;
  if (!Number.isFinite(hi)) hi = lo + 1;
  if (hi <= lo) hi = lo + (Math.abs(lo) || 1);
  if (axis.max === undefined) hi += (hi - lo) * 0.05;
  return [lo, hi];
}

function drawChart(body, props, results, options, ctx, extra = {}) {
  const data = alignSeries(results);
  const points = data[0].length;
  body.setAttribute('data-points', String(points));
  if (!points) {
    body.append(el('span', { class: 'empty' }, 'no data in this range'));
    return;
  }
  if (typeof window.uPlot !== 'function') {
    body.append(el('span', { class: 'error' }, 'the charting library did not load'));
    return;
  }
  const horizontal = ((props.annotations && props.annotations.horizontal) || []).concat(extra.thresholds || []);
  const hasRight = options.some((o) => o && o.yAxis === 'right');
  const left = (props.yAxis && props.yAxis.left) || {};
  const series = [{ label: ctx.tz === 'utc' ? 'time (UTC)' : 'time (local)', value: (u, v) => (v == null ? '' : formatTime(v * 1000, ctx.tz)) }]
    .concat(results.map((r, i) => ({
      label: r.label,
      stroke: (options[i] && options[i].color) || PALETTE[i % PALETTE.length],
      width: 2,
      dash: i >= PALETTE.length ? [6, 3] : undefined,
      scale: options[i] && options[i].yAxis === 'right' ? 'right' : 'y',
      spanGaps: false,
      points: { show: points < 60 },
    })));
  const axes = [{}, { label: left.label || '', scale: 'y' }];
  if (hasRight) axes.push({ side: 1, scale: 'right', grid: { show: false } });
  const width = Math.max(200, body.clientWidth - 8);
  const height = Math.max(120, body.clientHeight - 40);
  const plot = new window.uPlot({
    width, height, series, axes,
    scales: {
      // The x axis is the picked range, whatever the data cover.
      x: { time: true, range: () => [ctx.range[0] / 1000, ctx.range[1] / 1000] },
      y: { range: (u, min, max) => yRange(min, max, left, horizontal) },
      right: { range: (u, min, max) => yRange(min, max, (props.yAxis && props.yAxis.right) || {}, []) },
    },
    tzDate: ctx.tz === 'utc' ? (ts) => window.uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC') : undefined,
    legend: { live: true },
    hooks: {
      draw: [(u) => {
        const c = u.ctx;
        for (const h of horizontal) {
          if (h.visible === false || typeof h.value !== 'number') continue;
          const y = u.valToPos(h.value, 'y', true);
          c.save();
          c.strokeStyle = h.color || '#D55E00';
          c.setLineDash([8, 4]);
          c.lineWidth = 2;
          c.beginPath();
          c.moveTo(u.bbox.left, y);
          c.lineTo(u.bbox.left + u.bbox.width, y);
          c.stroke();
          if (h.label) {
            c.fillStyle = h.color || '#D55E00';
            c.font = `${12 * devicePixelRatio}px sans-serif`;
            c.textAlign = 'right';
            c.fillText(h.label, u.bbox.left + u.bbox.width - 4, y - 4);
          }
          c.restore();
        }
        for (const p of extra.marks || []) {
          const x = u.valToPos(p[0], 'x', true);
          const y = u.valToPos(p[1], 'y', true);
          c.save();
          c.fillStyle = '#D55E00';
          c.beginPath();
          c.arc(x, y, 5 * devicePixelRatio, 0, 2 * Math.PI);
          c.fill();
          c.restore();
        }
      }],
    },
  }, data, body);
  ctx.plots.push(plot);
  if (horizontal.length) {
    body.append(el('p', { class: 'annotations' }, horizontal.map((h) => `${h.label || 'threshold'}: ${formatNumber(h.value)}`).join(' · ')));
  }
}

/** Draws a `metric` widget. */
async function metricWidget(body, props, ctx) {
  const { results, options } = await fetchMetric(props, ctx);
  const view = props.view || 'timeSeries';
  if (view === 'singleValue') drawSingle(body, props, results, options);
  else if (view === 'gauge') drawGauge(body, props, results);
  else if (view === 'bar') drawBars(body, props, results);
  else drawChart(body, props, results, options, ctx);
}

const STATE_MARK = { OK: '✓', ALARM: '!', INSUFFICIENT_DATA: '?' };

/** An alarm's state as a labelled badge (the word, not only a colour). */
export function stateBadge(state) {
  return el('span', { class: `state state-${state || 'unknown'}`, 'data-state': state || 'unknown' },
    `${STATE_MARK[state] || '·'} ${state || 'not found'}`);
}

function alarmNameOf(entry) {
  const i = entry.indexOf(':alarm:');
  return entry.startsWith('arn:') && i >= 0 ? entry.slice(i + 7) : entry;
}

async function alarmWidget(body, props, ctx) {
  const { alarms } = await get('/api/alarms');
  const byName = new Map(alarms.map((a) => [a.name, a]));
  const table = el('table', { class: 'alarms' }, el('thead', {}, el('tr', {}, el('th', {}, 'Alarm'), el('th', {}, 'State'), el('th', {}, 'Since'))));
  const rows = el('tbody');
  let names = (props.alarms || []).map(alarmNameOf);
  if (props.states) names = names.filter((n) => byName.has(n) && props.states.includes(byName.get(n).state_value));
  for (const name of names) {
    const alarm = byName.get(name);
    const link = el('a', { href: viewHref(`alarms/${encodeURIComponent(name)}`) }, name);
    rows.append(el('tr', { 'data-alarm': name },
      el('td', {}, link),
      el('td', {}, stateBadge(alarm && alarm.state_value)),
      el('td', {}, alarm && alarm.state_updated_at ? formatTime(Date.parse(alarm.state_updated_at), ctx.tz) : '')));
  }
  table.append(rows);
  body.append(table);
}

/** Minimal, safe markdown: headings, lists, paragraphs, **bold**, `code`. */
export function markdown(text) {
  const root = el('div', { class: 'markdown' });
  const inline = (line) => {
    const parts = [];
    const re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
    let last = 0;
    for (const m of line.matchAll(re)) {
      if (m.index > last) parts.push(line.slice(last, m.index));
      const token = m[0];
      parts.push(token.startsWith('**') ? el('strong', {}, token.slice(2, -2)) : el('code', {}, token.slice(1, -1)));
      last = m.index + token.length;
    }
    if (last < line.length) parts.push(line.slice(last));
    return parts;
  };
  let list = null;
  for (const raw of String(text).split('\n')) {
    const line = raw.trimEnd();
    const heading = /^(#{1,3})\s+(.*)$/.exec(line);
    const item = /^\s*[-*]\s+(.*)$/.exec(line);
    if (item) {
      if (!list) { list = el('ul'); root.append(list); }
      list.append(el('li', {}, inline(item[1])));
      continue;
    }
    list = null;
    if (heading) root.append(el(`h${heading[1].length + 2}`, {}, inline(heading[2])));
    else if (line) root.append(el('p', {}, inline(line)));
  }
  return root;
}

/** `SOURCE 'a' | SOURCE 'b' | rest` → [['a', 'b'], 'rest']. */
export function splitLogQuery(query) {
  const groups = [];
  let rest = query.trimStart();
  for (;;) {
    const m = /^SOURCE\s*(['"])(.*?)\1\s*\|?\s*/.exec(rest);
    if (!m) break;
    groups.push(m[2]);
    rest = rest.slice(m[0].length);
  }
  return [groups, rest];
}

/** Rows of the logs or traces API as a table, every cell as text. */
export function table(columns, rows, format = (c, v) => v) {
  const t = el('table', { class: 'rows' });
  t.append(el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c)))));
  const tbody = el('tbody');
  for (const row of rows) {
    tbody.append(el('tr', {}, columns.map((c) => {
      const v = format(c, row[c], row);
      if (v instanceof Node) return el('td', {}, v);
      return el('td', {}, v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
    })));
  }
  t.append(tbody);
  return t;
}

async function logWidget(body, props, ctx) {
  const [groups, query] = splitLogQuery(props.query || '');
  const answer = await post('/api/logs/query', { groups, query, start: ctx.range[0], end: ctx.range[1], page_size: 200 });
  const columns = answer.columns || [];
  const rows = answer.rows || [];
  body.append(el('p', { class: 'meta' }, `${answer.matched} matched of ${answer.scanned} scanned in ${answer.took_ms} ms`));
  if (props.view === 'timeSeries' || props.view === 'bar') {
    // A `stats ... by bin(...)` result: the time column and its numbers.
    const time = columns.find((c) => rows.length && typeof rows[0][c] === 'string' && Number.isFinite(Date.parse(rows[0][c])));
    const numbers = columns.filter((c) => c !== time && rows.some((r) => typeof r[c] === 'number'));
    if (time && numbers.length) {
      const sorted = rows.slice().sort((a, b) => Date.parse(a[time]) - Date.parse(b[time]));
      const results = numbers.map((c) => ({ label: c, timestamps: sorted.map((r) => Date.parse(r[time])), values: sorted.map((r) => (typeof r[c] === 'number' ? r[c] : null)) }));
      const chart = el('div', { class: 'log-chart' });
      body.append(chart);
      drawChart(chart, props, results, numbers.map(() => ({})), ctx);
      return;
    }
  }
  body.append(table(columns, rows));
}

function traceIdLink(id) {
  return el('a', { href: viewHref(`traces/${encodeURIComponent(id)}`) }, id);
}

async function traceListWidget(body, props, ctx) {
  const q = new URLSearchParams({ start: String(Math.round(ctx.range[0])), end: String(Math.round(ctx.range[1])), limit: String(props.limit || 20) });
  if (props.filter) q.set('filter', props.filter);
  const answer = await get(`/api/traces?${q}`);
  const traces = answer.traces || [];
  const columns = traces.length ? Object.keys(traces[0]).filter((k) => typeof traces[0][k] !== 'object') : ['id'];
  body.append(table(columns, traces, (c, v) => (c === 'id' || c === 'trace_id' ? traceIdLink(String(v)) : v)));
}

/** An edge's figures: on the edge itself (`GET /api/service-map`), or under `stats`. */
function edgeStats(e) {
  if (e.stats) return e.stats;
  const { caller, callee, histogram, ...figures } = e;
  return figures;
}

/** The service map as a node-link drawing (SVG, names as text nodes) and its edge table. */
export function serviceMap(body, graph) {
  const nodes = graph.nodes || [];
  const edges = graph.edges || [];
  if (!nodes.length) {
    body.append(el('span', { class: 'empty' }, 'no services in this range'));
    return;
  }
  const names = new Map(nodes.map((n) => [n.id, n.name || n.id]));
  const NS = 'http://www.w3.org/2000/svg';
  const perRow = 3;
  const w = 600; const h = 60 + 70 * Math.ceil(nodes.length / perRow);
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'service map');
  const pos = new Map(nodes.map((n, i) => [n.id, [100 + (i % perRow) * 200, 40 + Math.floor(i / perRow) * 70]]));
  for (const e of edges) {
    const a = pos.get(e.caller); const b = pos.get(e.callee);
    if (!a || !b) continue;
    const line = document.createElementNS(NS, 'line');
    line.setAttribute('x1', a[0]); line.setAttribute('y1', a[1]); line.setAttribute('x2', b[0]); line.setAttribute('y2', b[1]);
    line.setAttribute('class', 'edge');
    svg.append(line);
    const count = document.createElementNS(NS, 'text');
    count.setAttribute('x', (a[0] + b[0]) / 2); count.setAttribute('y', (a[1] + b[1]) / 2 - 4);
    count.setAttribute('text-anchor', 'middle');
    count.textContent = `${edgeStats(e).count ?? ''}`;
    svg.append(count);
  }
  for (const n of nodes) {
    const [x, y] = pos.get(n.id);
    const rect = document.createElementNS(NS, 'rect');
    rect.setAttribute('x', x - 80); rect.setAttribute('y', y - 15); rect.setAttribute('width', 160); rect.setAttribute('height', 30);
    rect.setAttribute('class', 'node');
    const label = document.createElementNS(NS, 'text');
    label.setAttribute('x', x); label.setAttribute('y', y + 5); label.setAttribute('text-anchor', 'middle');
    label.textContent = n.name || n.id;
    svg.append(rect, label);
  }
  body.append(svg);
  if (edges.length) {
    // Latencies in ms with 3 significant digits, not 17 digits of seconds.
    const ms = (v) => (typeof v === 'number' ? formatNumber(v * 1000) : v);
    const rows = edges.map((e) => {
      const stats = edgeStats(e);
      return { caller: names.get(e.caller) || e.caller, callee: names.get(e.callee) || e.callee, ...stats, 'p50 ms': ms(stats.p50_s), 'p99 ms': ms(stats.p99_s) };
    });
    const columns = ['caller', 'callee', ...['count', 'ok', 'error', 'throttle', 'fault'].filter((c) => rows.some((r) => c in r)), 'p50 ms', 'p99 ms'];
    body.append(table(columns, rows));
  }
}

async function serviceMapWidget(body, props, ctx) {
  const answer = await get(`/api/service-map?start=${Math.round(ctx.range[0])}&end=${Math.round(ctx.range[1])}`);
  serviceMap(body, answer.graph || answer);
}

const DRAW = {
  metric: metricWidget,
  alarm: alarmWidget,
  log: logWidget,
  'trace-list': traceListWidget,
  'service-map': serviceMapWidget,
  text: async (body, props) => body.append(markdown(props.markdown || '')),
};

const FALLBACK_TITLE = { alarm: 'Alarms', log: 'Logs', 'trace-list': 'Traces', 'service-map': 'Service map', text: '' };

/** One widget's cell, drawn (errors shown in the cell, never thrown). */
export async function drawWidget(widget, index, ctx) {
  const props = widget.properties || {};
  const cell = el('section', { class: `widget widget-${widget.type}`, 'data-widget': String(index), 'data-type': widget.type, 'aria-label': title(widget, widget.type) });
  const x = widget.x; const w = widget.width || 6; const h = widget.height || 6;
  cell.style.gridColumn = Number.isInteger(x) ? `${x + 1} / span ${w}` : `span ${w}`;
  if (Number.isInteger(widget.y)) cell.style.gridRow = `${widget.y + 1} / span ${h}`;
  else cell.style.gridRow = `span ${h}`;
  const heading = title(widget, FALLBACK_TITLE[widget.type] ?? widget.type);
  if (heading) cell.append(el('h2', {}, heading));
  const body = el('div', { class: 'widget-body' });
  cell.append(body);
  ctx.grid.append(cell);
  const draw = DRAW[widget.type];
  try {
    if (!draw) throw new Error(`unknown widget type ${widget.type}`);
    await draw(body, props, ctx);
    cell.setAttribute('data-ready', 'true');
  } catch (err) {
    body.append(el('p', { class: 'error', role: 'alert' }, err.message || String(err)));
    cell.setAttribute('data-ready', 'error');
  }
  return cell;
}

export { drawChart };
