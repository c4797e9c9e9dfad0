// The pages beside the dashboards: alarms, logs (query editor and live
// tail), traces (search, waterfall, service map) and the inference log.

import { api, getKey, get, post } from './api.js';
import { drawChart, el, serviceMap, splitLogQuery, stateBadge, table, viewHref } from './widgets.js';
import { formatNumber, formatTime } from './time.js';

function card(title, ...children) {
  return el('section', { class: 'card' }, el('h2', {}, title), ...children);
}

/**
 * "Add to dashboard": `widget(form)` (type, width, height, properties) goes
 * below the widgets of a new or existing dashboard; `controls` are extra
 * form fields `widget` reads.
 */
function addToDashboard(widget, ...controls) {
  const add = el('form', { class: 'add-to-dashboard' },
    el('label', {}, 'Add to dashboard ', el('input', { name: 'dashboard', size: 30, placeholder: 'a new or existing name' })),
    ...controls,
    el('button', { type: 'submit' }, 'Add'), el('span', { class: 'meta', 'data-testid': 'added' }));
  add.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = add.dashboard.value.trim();
    const note = add.querySelector('[data-testid="added"]');
    try {
      // Ask the list first: a new name is not an error (and no 404 in the console).
      const { dashboards } = await get('/api/dashboards');
      const exists = dashboards.some((d) => d.name === name);
      const body = exists ? (await get(`/api/dashboards/${encodeURIComponent(name)}`)).body : { widgets: [] };
      const bottom = Math.max(0, ...(body.widgets || []).map((w) => (w.y || 0) + (w.height || 6)));
      const { type, width, height, properties } = widget(add);
      body.widgets = (body.widgets || []).concat([{ type, x: 0, y: bottom, width, height, properties }]);
      await api('PUT', `/api/dashboards/${encodeURIComponent(name)}`, body);
      note.textContent = `added to ${name} (${body.widgets.length} widgets)`;
    } catch (err) {
      note.textContent = `not added: ${err.message}`;
    }
  });
  return card('Add to dashboard', add);
}

/** Alarms at a glance; one alarm: its graph with the threshold and breaching points, history, set-state. */
export async function alarmsPage(main, name, ctx) {
  if (!name) {
    const { alarms, evaluator } = await get('/api/alarms');
    main.append(el('h1', {}, 'Alarms'), el('p', { class: 'meta' }, `evaluator: ${evaluator.mode}${evaluator.leader ? ' (this replica evaluates)' : ''}`));
    const counts = {};
    for (const a of alarms) counts[a.state_value] = (counts[a.state_value] || 0) + 1;
    main.append(el('p', { class: 'summary' }, ['ALARM', 'OK', 'INSUFFICIENT_DATA'].map((s) => el('span', {}, stateBadge(s), ` ${counts[s] || 0}  `))));
    main.append(table(['name', 'state_value', 'state_reason', 'state_updated_at'], alarms, (c, v) => {
      if (c === 'name') return el('a', { href: viewHref(`alarms/${encodeURIComponent(v)}`) }, v);
      if (c === 'state_value') return stateBadge(v);
      if (c === 'state_updated_at') return v ? formatTime(Date.parse(v), ctx.tz) : '';
      return v;
    }));
    return;
  }
  const alarm = await get(`/api/alarms/${encodeURIComponent(name)}`);
  main.append(el('h1', {}, alarm.name), el('p', {}, stateBadge(alarm.state_value), ' ', alarm.state_reason || ''));
  if (alarm.namespace && alarm.metric_name) {
    const graph = el('div', { class: 'widget-body chart' });
    main.append(card('Metric and threshold', graph));
    const stat = alarm.extended_statistic || alarm.statistic || 'Average';
    const q = new URLSearchParams({ stat, period: String(alarm.period), start: String(Math.round(ctx.range[0])), end: String(Math.round(ctx.range[1])) });
    for (const [k, v] of Object.entries(alarm.dimensions || {})) q.set(`dim.${k}`, v);
    const data = await get(`/api/metrics/${encodeURIComponent(alarm.namespace)}/${encodeURIComponent(alarm.metric_name)}?${q}`);
    const values = data.values[stat] || [];
    const points = data.timestamps.map((t, i) => [t, values[i]]).filter((p) => p[1] !== null);
    const breaching = (v) => ({
      GreaterThanThreshold: v > alarm.threshold, GreaterThanOrEqualToThreshold: v >= alarm.threshold,
      LessThanThreshold: v < alarm.threshold, LessThanOrEqualToThreshold: v <= alarm.threshold,
    })[alarm.comparison_operator];
    const result = { label: `${alarm.metric_name} ${stat}`, timestamps: points.map((p) => p[0]), values: points.map((p) => p[1]) };
    drawChart(graph, {}, [result], [{}], ctx, {
      thresholds: [{ value: alarm.threshold, label: `threshold ${alarm.comparison_operator} ${alarm.threshold}` }],
      marks: points.filter((p) => breaching(p[1])).map((p) => [p[0] / 1000, p[1]]),
    });
  }
  const form = el('form', { class: 'set-state' },
    el('label', {}, 'Set state ', el('select', { name: 'state' }, ['ALARM', 'OK', 'INSUFFICIENT_DATA'].map((s) => el('option', { value: s }, s)))),
    el('label', {}, ' reason ', el('input', { name: 'reason', value: 'set from the console (testing)', size: 40 })),
    el('button', { type: 'submit' }, 'Set state'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    await post(`/api/alarms/${encodeURIComponent(name)}/state`, { state_value: form.state.value, state_reason: form.reason.value });
    window.vigilConsole.render();
  });
  main.append(card('Set state (for tests: the next evaluation recomputes it)', form));
  const { items } = await get(`/api/alarms/${encodeURIComponent(name)}/history`);
  main.append(card('History', table(['timestamp', 'item_type', 'summary'], items, (c, v) => (c === 'timestamp' && v ? formatTime(Date.parse(v), ctx.tz) : v))));
}

/** The query editor (groups, query, the toolbar's range) → a table; live tail with a filter pattern. */
export async function logsPage(main, state, ctx) {
  const { groups } = await get('/api/logs/groups');
  const names = (groups || []).map((g) => (typeof g === 'string' ? g : g.name));
  const chosen = state.params.get('groups') || names[0] || '/vigil/access';
  const form = el('form', { class: 'log-query' },
    el('label', {}, 'Groups ', el('input', { name: 'groups', value: chosen, list: 'log-groups', size: 40 })),
    el('datalist', { id: 'log-groups' }, names.map((n) => el('option', { value: n }))),
    el('label', { class: 'query-label' }, 'Query', el('textarea', { name: 'query', rows: 3, spellcheck: 'false' },
      state.params.get('q') || 'fields @timestamp, @message | sort @timestamp desc | limit 50')),
    el('button', { type: 'submit' }, 'Run query'));
  const output = el('div', { class: 'log-results', 'data-testid': 'log-results' });
  main.append(el('h1', {}, 'Logs'), form, output);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    ctx.navigate({ extra: { groups: form.groups.value, q: form.query.value } });
  });
  if (state.params.get('q')) {
    const [sourceGroups, rest] = splitLogQuery(state.params.get('q'));
    const answer = await post('/api/logs/query', {
      groups: sourceGroups.length ? sourceGroups : chosen.split(',').map((g) => g.trim()).filter(Boolean),
      query: rest, start: ctx.range[0], end: ctx.range[1], page_size: 500,
    });
    output.append(el('p', { class: 'meta' }, `${answer.matched} matched of ${answer.scanned} scanned in ${answer.took_ms} ms`),
      table(answer.columns || [], answer.rows || []));
    // A log widget names its groups first: `SOURCE 'g' | query`.
    const groups = sourceGroups.length ? sourceGroups : chosen.split(',').map((g) => g.trim()).filter(Boolean);
    const query = groups.map((g) => `SOURCE '${g}'`).concat([rest]).join(' | ');
    const binned = /\bbin\(/.test(rest);
    const view = el('label', {}, ' as ', el('select', { name: 'view' },
      el('option', { value: 'table', selected: !binned }, 'a table'),
      el('option', { value: 'timeSeries', selected: binned }, 'a time series (stats ... by bin)')));
    output.append(addToDashboard((form) => ({
      type: 'log', width: 24, height: 6, properties: { query, view: form.view.value, title: rest },
    }), view));
  }
  const tailForm = el('form', { class: 'tail' },
    el('label', {}, 'Live tail of the first group, filter pattern ', el('input', { name: 'filter', size: 30, placeholder: '"ERROR" or { $.status >= 500 }' })),
    el('button', { type: 'submit' }, 'Start tail'), el('button', { type: 'button', name: 'stop' }, 'Stop'));
  const lines = el('ol', { class: 'tail-lines' });
  main.append(card('Live tail', tailForm, lines));
  let abort = null;
  tailForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (abort) abort.abort();
    abort = new AbortController();
    const group = form.groups.value.split(',')[0].trim();
    const q = tailForm.filter.value ? `?filter=${encodeURIComponent(tailForm.filter.value)}` : '';
    const headers = getKey() ? { 'x-api-key': getKey() } : {};
    // EventSource cannot send a header: read the event stream with fetch.
    const response = await fetch(`/api/logs/${encodeURIComponent(group)}/tail${q}`, { headers, signal: abort.signal, credentials: 'omit' });
    if (!response.ok) { lines.append(el('li', { class: 'error' }, `tail refused: HTTP ${response.status}`)); return; }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        lines.prepend(el('li', {}, data));
        while (lines.childElementCount > 500) lines.lastElementChild.remove();
      }
    }
  });
  tailForm.stop.addEventListener('click', () => { if (abort) abort.abort(); });
}

function spanTimes(s) {
  const start = s.start_us ?? (s.start_time_unix_nano ? s.start_time_unix_nano / 1000 : Date.parse(s.start) * 1000);
  const end = s.end_us ?? (s.end_time_unix_nano ? s.end_time_unix_nano / 1000 : Date.parse(s.end) * 1000);
  return [start, end];
}

/** A trace's spans as a waterfall: one bar per span, indented by depth, offset and width by time. */
export function waterfall(spans) {
  const times = spans.map(spanTimes);
  const t0 = Math.min(...times.map((t) => t[0]));
  const t1 = Math.max(...times.map((t) => t[1]));
  const total = Math.max(1, t1 - t0);
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depth = (s) => { let d = 0; let p = s; while (p && p.parent_id && byId.has(p.parent_id) && d < 50) { p = byId.get(p.parent_id); d++; } return d; };
  const list = el('ol', { class: 'waterfall', 'data-testid': 'waterfall' });
  spans.map((s, i) => [s, times[i]]).sort((a, b) => a[1][0] - b[1][0]).forEach(([s, [start, end]]) => {
    const bar = el('span', { class: `span-bar${s.error ? ' span-error' : ''}` });
    bar.style.marginLeft = `${(100 * (start - t0)) / total}%`;
    bar.style.width = `${Math.max(0.5, (100 * (end - start)) / total)}%`;
    const label = el('span', { class: 'span-label' }, `${s.service || ''} ${s.name || ''} — ${formatNumber((end - start) / 1000)} ms${s.error ? ' (error)' : ''}`);
    label.style.paddingLeft = `${depth(s)}em`;
    list.append(el('li', {}, label, el('span', { class: 'span-track' }, bar)));
  });
  return list;
}

/** Trace search (the filter language), one trace's waterfall, the service map. */
export async function tracesPage(main, state, ctx) {
  if (state.arg) {
    const trace = await get(`/api/traces/${encodeURIComponent(state.arg)}`);
    const links = el('p', {}, el('a', { href: viewHref('logs', { q: `SOURCE '/vigil/access' | filter trace_id = '${trace.trace_id}'` }) }, 'Log events of this trace'));
    main.append(el('h1', {}, `Trace ${trace.trace_id}`), card('Waterfall', waterfall(trace.spans || [])), links);
    // Its inference-log records: those received while Vigil's spans ran
    // that carry the same trace id.
    const times = (trace.spans || []).filter((s) => s.service === 'vigil').map(spanTimes);
    if (times.length) {
      const from = Math.floor(Math.min(...times.map((t) => t[0])) / 1000);
      const to = Math.ceil(Math.max(...times.map((t) => t[1])) / 1000) + 1;
      try {
        const { records } = await get(`/api/inferences?from=${from}&to=${to}&limit=1000`);
        for (const r of (records || []).filter((r) => r.trace_id === trace.trace_id)) {
          links.append(' · ', el('a', { href: viewHref(`inferences/${encodeURIComponent(r.request_id)}`), 'data-testid': 'trace-inference' }, `inference-log record ${r.request_id}`));
        }
      } catch (err) {
        links.append(` · inference log: ${err.message || err}`);
      }
    }
    return;
  }
  const form = el('form', { class: 'trace-search' },
    el('label', {}, 'Filter ', el('input', { name: 'filter', size: 50, value: state.params.get('filter') || '', placeholder: 'responsetime > 0.5 AND http.status = 200' })),
    el('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (e) => { e.preventDefault(); ctx.navigate({ extra: { filter: form.filter.value } }); });
  main.append(el('h1', {}, 'Traces'), form);
  const q = new URLSearchParams({ start: String(Math.round(ctx.range[0])), end: String(Math.round(ctx.range[1])), limit: '50' });
  if (state.params.get('filter')) q.set('filter', state.params.get('filter'));
  const answer = await get(`/api/traces?${q}`);
  const traces = answer.traces || [];
  const columns = traces.length ? Object.keys(traces[0]).filter((k) => typeof traces[0][k] !== 'object') : ['trace_id'];
  main.append(card(`${traces.length} traces`, table(columns, traces, (c, v) => (c === 'trace_id' || c === 'id' ? el('a', { href: viewHref(`traces/${encodeURIComponent(v)}`) }, String(v)) : v))));
  const filter = state.params.get('filter') || '';
  main.append(addToDashboard(() => ({
    type: 'trace-list', width: 24, height: 6,
    properties: { filter, limit: 50, title: filter ? `Traces: ${filter}` : 'Traces' },
  })));
  const map = el('div', { class: 'service-map' });
  main.append(card('Service map', map));
  const graph = await get(`/api/service-map?start=${Math.round(ctx.range[0])}&end=${Math.round(ctx.range[1])}`);
  serviceMap(map, graph.graph || graph);
}

/** One decision by request id: input, score, label, model version, latency, trace. */
export async function inferencesPage(main, state, ctx) {
  const form = el('form', { class: 'inference-lookup' },
    el('label', {}, 'Request id ', el('input', { name: 'request_id', size: 40, value: state.arg || '' })),
    el('button', { type: 'submit' }, 'Look up'));
  form.addEventListener('submit', (e) => { e.preventDefault(); ctx.navigate({ page: 'inferences', arg: form.request_id.value.trim() }); });
  main.append(el('h1', {}, 'Inference log'), form);
  if (!state.arg) return;
  const { records } = await get(`/api/inferences/${encodeURIComponent(state.arg)}`);
  for (const record of records || []) {
    const rows = Object.entries(record).map(([field, value]) => ({ field, value }));
    main.append(card(`Decision ${state.arg} (${record.model || ''} ${record.version || ''})`, table(['field', 'value'], rows, (c, v, row) => {
      if (c === 'value' && row.field === 'trace_id' && v) return el('a', { href: viewHref(`traces/${encodeURIComponent(v)}`) }, String(v));
      if (c === 'value' && /(_at|time)$/.test(row.field) && typeof v === 'string') return `${v} (${formatTime(Date.parse(v), ctx.tz)})`;
      return v;
    })));
  }
}

/** The series a metric-explorer entry names, as a dashboard metric row. */
export function seriesRow(series, stat) {
  const row = [series.namespace, series.name];
  for (const [k, v] of Object.entries(series.dimensions || {})) row.push(k, v);
  row.push({ stat });
  return row;
}

/** Metrics explorer: pick a stored series, a statistic and a period, graph it, add it to a dashboard. */
export async function metricsPage(main, state, ctx) {
  const { series } = await get('/api/metrics');
  const key = (s) => `${s.namespace} ${s.name}${Object.entries(s.dimensions || {}).map(([k, v]) => ` ${k}=${v}`).join('')}`;
  const chosen = state.params.get('series') || '';
  const stat = state.params.get('stat') || 'Average';
  const period = state.params.get('period') || '60';
  const form = el('form', { class: 'explorer' },
    el('label', {}, 'Series ', el('select', { name: 'series' }, el('option', { value: '' }, '— pick a series —'),
      series.map((s) => el('option', { value: key(s), selected: key(s) === chosen }, key(s))))),
    el('label', {}, ' Statistic ', el('input', { name: 'stat', value: stat, size: 10, list: 'stats' })),
    el('datalist', { id: 'stats' }, ['Average', 'Sum', 'SampleCount', 'Minimum', 'Maximum', 'p50', 'p90', 'p99', 'p99.9', 'tm90', 'IQM'].map((s) => el('option', { value: s }))),
    el('label', {}, ' Period ', el('select', { name: 'period' }, ['10', '60', '300', '3600'].map((p) => el('option', { value: p, selected: p === period }, `${p} s`)))),
    el('button', { type: 'submit' }, 'Graph'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    ctx.navigate({ extra: { series: form.series.value, stat: form.stat.value, period: form.period.value } });
  });
  main.append(el('h1', {}, 'Metrics explorer'), form);
  const picked = series.find((s) => key(s) === chosen);
  if (!picked) return;
  const graph = el('div', { class: 'widget-body chart', 'data-testid': 'explorer-chart' });
  main.append(card(`${key(picked)} ${stat} per ${period} s`, graph));
  const properties = { metrics: [seriesRow(picked, stat)], view: 'timeSeries', period: Number(period), title: `${picked.name} ${stat}` };
  const answer = await post('/api/metrics/query', {
    metrics: [{ id: 'm0', label: `${picked.name} ${stat}`, metric_stat: { namespace: picked.namespace, metric_name: picked.name, dimensions: picked.dimensions || {}, period: Number(period), stat } }],
    start: ctx.range[0], end: ctx.range[1], period: Number(period),
  });
  drawChart(graph, properties, answer.results || [], [{}], ctx);
  main.append(addToDashboard(() => ({ type: 'metric', width: 12, height: 6, properties })));
}
