// The console: a hash router whose URL holds the whole state
// (`#/dashboards/NAME?range=3h&tz=utc&refresh=10s`), a toolbar, and the
// pages. No framework: plain ES modules.

import { getKey, onAuthNeeded, setKey, get } from './api.js';
import { drawWidget, el } from './widgets.js';
import { alarmsPage, inferencesPage, logsPage, metricsPage, tracesPage } from './pages.js';
import { RELATIVE, formatTime, fromInput, inputValue, rangeMs, rangeOfStart } from './time.js';

const $ = (id) => document.getElementById(id);
const main = $('main');
let timer = null;
let generation = 0;
let plots = [];

/** The route and its query parameters. */
export function parseHash(hash) {
  const text = hash.replace(/^#/, '') || '/dashboards';
  const [path, query] = text.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return {
    page: parts[0] || 'dashboards',
    arg: parts.slice(1).join('/'),
    range: params.get('range') || '',
    start: params.get('start') || '',
    end: params.get('end') || '',
    tz: params.get('tz') === 'local' ? 'local' : 'utc',
    refresh: ['10s', '1m'].includes(params.get('refresh')) ? params.get('refresh') : 'off',
    params,
  };
}

function hashOf(state, overrides = {}) {
  const s = { ...state, ...overrides };
  const q = new URLSearchParams();
  if (s.range) q.set('range', s.range);
  if (s.range === 'custom') { q.set('start', s.start); q.set('end', s.end); }
  q.set('tz', s.tz);
  if (s.refresh !== 'off') q.set('refresh', s.refresh);
  for (const [k, v] of Object.entries(s.extra || {})) if (v) q.set(k, v);
  const path = s.arg ? `/${s.page}/${encodeURIComponent(s.arg)}` : `/${s.page}`;
  return `#${path}?${q}`;
}

function navigate(overrides) {
  const state = parseHash(location.hash);
  const extra = {};
  for (const [k, v] of state.params) if (!['range', 'start', 'end', 'tz', 'refresh'].includes(k)) extra[k] = v;
  location.hash = hashOf(state, { extra, ...overrides });
}

function status(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind}`;
}

function syncControls(state) {
  $('range').value = state.range || '3h';
  $('tz').value = state.tz;
  $('refresh').value = state.refresh;
  const custom = state.range === 'custom';
  $('custom-range').hidden = !custom;
  if (custom) {
    const [start, end] = rangeMs(state);
    $('custom-start').value = inputValue(start, state.tz);
    $('custom-end').value = inputValue(end, state.tz);
  }
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === state.page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

async function dashboardList() {
  const { dashboards } = await get('/api/dashboards');
  main.append(el('h1', {}, 'Dashboards'));
  const list = el('ul', { class: 'dashboard-list' });
  for (const d of dashboards) {
    list.append(el('li', {}, el('a', { href: hashOf(parseHash(location.hash), { page: 'dashboards', arg: d.name }) }, d.name),
      ` — ${d.widgets} widgets (${d.source})`));
  }
  main.append(list);
}

async function dashboardPage(state, gen) {
  const dashboard = await get(`/api/dashboards/${encodeURIComponent(state.arg)}`);
  if (gen !== generation) return;
  if (!state.range) {
    // The dashboard's own default range, until the picker says otherwise.
    state.range = rangeOfStart(dashboard.body.start) || '3h';
    syncControls(state);
  }
  const range = rangeMs(state);
  const ctx = { range, tz: state.tz, plots: [], grid: el('div', { class: 'grid', 'data-dashboard': dashboard.name }) };
  main.append(el('h1', {}, dashboard.name),
    el('p', { class: 'range-label', 'data-testid': 'range' }, `${formatTime(range[0], state.tz)} — ${formatTime(range[1], state.tz)}`),
    ctx.grid);
  const widgets = dashboard.body.widgets || [];
  await Promise.all(widgets.map((w, i) => drawWidget(w, i, ctx)));
  plots = ctx.plots;
  main.setAttribute('data-loaded', String(Date.now()));
}

async function render() {
  const gen = ++generation;
  const state = parseHash(location.hash);
  syncControls(state);
  for (const p of plots) p.destroy();
  plots = [];
  main.replaceChildren();
  main.removeAttribute('data-loaded');
  status('');
  const timeState = { ...state, range: state.range || '3h' };
  try {
    if (state.page === 'dashboards' && state.arg) await dashboardPage(state, gen);
    else if (state.page === 'dashboards') await dashboardList();
    else if (state.page === 'alarms') await alarmsPage(main, state.arg, { range: rangeMs(timeState), tz: state.tz, plots });
    else if (state.page === 'metrics') await metricsPage(main, state, { range: rangeMs(timeState), tz: state.tz, navigate, plots });
    else if (state.page === 'logs') await logsPage(main, state, { range: rangeMs(timeState), tz: state.tz, navigate });
    else if (state.page === 'traces') await tracesPage(main, state, { range: rangeMs(timeState), tz: state.tz, navigate, plots });
    else if (state.page === 'inferences') await inferencesPage(main, state, { tz: state.tz, navigate });
    else main.append(el('p', { class: 'error' }, `no page ${state.page}`));
    if (gen === generation) main.setAttribute('data-loaded', String(Date.now()));
  } catch (err) {
    if (gen === generation) status(err.message || String(err), 'error');
  }
  schedule(state);
}

function schedule(state) {
  clearTimeout(timer);
  const ms = { '10s': 10000, '1m': 60000 }[state.refresh];
  if (ms) timer = setTimeout(() => { if (!document.hidden) render(); else schedule(state); }, ms);
}

function showKeyForm(open) {
  $('key-form').hidden = !open;
  if (open) $('key-input').focus();
}

function wire() {
  $('range').addEventListener('change', (e) => {
    const range = e.target.value;
    if (range === 'custom') {
      const [start, end] = rangeMs(parseHash(location.hash));
      navigate({ range, start: new Date(start).toISOString(), end: new Date(end).toISOString() });
    } else navigate({ range });
  });
  $('custom-apply').addEventListener('click', () => {
    const tz = $('tz').value;
    const start = fromInput($('custom-start').value, tz);
    const end = fromInput($('custom-end').value, tz);
    if (!start || !end || Date.parse(start) >= Date.parse(end)) { status('the custom range needs a start before its end', 'error'); return; }
    navigate({ range: 'custom', start, end });
  });
  $('tz').addEventListener('change', (e) => navigate({ tz: e.target.value }));
  $('refresh').addEventListener('change', (e) => navigate({ refresh: e.target.value }));
  $('reload').addEventListener('click', () => render());
  $('key-button').addEventListener('click', () => showKeyForm($('key-form').hidden));
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setKey($('key-input').value.trim());
    $('key-input').value = '';
    showKeyForm(false);
    render();
  });
  $('key-clear').addEventListener('click', () => { setKey(''); showKeyForm(true); });
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, textarea, select')) return;
    if (e.key === 'r' && !e.ctrlKey && !e.metaKey) render();
  });
  onAuthNeeded((code) => {
    status(code === 401 ? 'the admin API wants an API key' : 'this key may not use the admin API (it needs the admin role)', 'error');
    showKeyForm(true);
  });
  window.addEventListener('hashchange', render);
  let resize = null;
  window.addEventListener('resize', () => { clearTimeout(resize); resize = setTimeout(render, 300); });
  $('key-button').textContent = getKey() ? 'API key (set)' : 'API key';
}

// Exposed for the browser test and for curious operators.
window.vigilConsole = { render, ranges: Object.keys(RELATIVE) };
wire();
render();
