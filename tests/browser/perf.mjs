// The console's performance figures against a running vigil (issue 15's
// targets: first meaningful paint ≤ 300 ms on loopback, the overview's data
// in ≤ 100 ms of server time, an open console refreshing every 10 s ≤ 1% of
// a core). Run by bench/console.sh, which starts the server:
//
//   node perf.mjs ADDR PID WINDOW_S CLK_TCK
//
// 1. `/` in a fresh browser context, RUNS times: first contentful paint
//    (the paint timing entry), DOMContentLoaded, and the moment the page
//    marked itself loaded (main[data-loaded], the dashboard list drawn).
// 2. The Vigil-Overview dashboard over 3 h: the API requests it made (resource
//    timing: count, total time-to-first-byte) and their server time from
//    the access log (`latency_us` of the /api routes in that window).
// 3. The server's CPU time (utime + stime of /proc/PID/stat) over WINDOW_S
//    with no console open, then with the overview open refreshing every 10 s.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';

const [addr, pid, windowS, clkTck] = process.argv.slice(2);
const base = `http://${addr}`;
const RUNS = 5;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuTicks = () => {
  // Fields after the parenthesised command name: utime is the 14th, stime the 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
};
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(1)} ms`;

const browser = await chromium.launch({
  executablePath: process.env.VIGIL_TEST_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const fcp = []; const dcl = []; const loaded = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.waitForSelector('main[data-loaded]', { timeout: 20000 });
    const t = await page.evaluate(() => {
      const paint = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
      const nav = performance.getEntriesByType('navigation')[0];
      // data-loaded holds Date.now() when the page finished drawing.
      const drawn = Number(document.querySelector('main').dataset.loaded) - performance.timeOrigin;
      return { fcp: paint ? paint.startTime : NaN, dcl: nav.domContentLoadedEventEnd, drawn };
    });
    fcp.push(t.fcp); dcl.push(t.dcl); loaded.push(t.drawn);
    await context.close();
  }
  console.log(`first contentful paint of / (median of ${RUNS} cold loads): ${ms(median(fcp))} (all: ${fcp.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`DOMContentLoaded: ${ms(median(dcl))}; dashboard list drawn (main[data-loaded]): ${ms(median(loaded))}`);

  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  // Warm the page's files, then time the overview's data alone.
  await page.goto(`${base}/`);
  await page.waitForSelector('main[data-loaded]', { timeout: 20000 });
  await sleep(1500);
  const mark = await page.evaluate(() => performance.now());
  const t0 = Date.now();
  await page.goto(`${base}/#/dashboards/Vigil-Overview?range=3h&tz=utc`);
  await page.waitForFunction(() => document.querySelector('h1') && document.querySelector('main[data-loaded]') && document.querySelectorAll('section.widget').length >= 10, null, { timeout: 30000 });
  const t1 = Date.now();
  const api = await page.evaluate((after) => performance.getEntriesByType('resource')
    .filter((r) => r.startTime >= after && new URL(r.name).pathname.startsWith('/api/'))
    .map((r) => ({ path: new URL(r.name).pathname, ttfb: r.responseStart - r.requestStart, total: r.duration })), mark);
  const widgets = await page.$$eval('section.widget', (w) => w.length);
  console.log(`Vigil-Overview (${widgets} widgets, 3 h): loaded in ${t1 - t0} ms; ${api.length} API requests, browser time-to-first-byte summed ${ms(api.reduce((a, r) => a + r.ttfb, 0))}, slowest ${ms(Math.max(...api.map((r) => r.ttfb)))}`);
  // The access log is written off the request path: give it a moment.
  await sleep(2500);
  const answer = await page.evaluate(async ([start, end]) => {
    const r = await fetch('/api/logs/query', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ groups: ['/vigil/access'], start, end, page_size: 1000,
        query: "filter route like '/api/' | stats count(*) as requests, sum(latency_us) as us, max(latency_us) as max_us by route" }),
    });
    return r.json();
  }, [t0, t1 + 1]);
  const rows = (answer.rows || []).slice().sort((a, b) => b.us - a.us);
  const sum = (k) => rows.reduce((a, r) => a + (r[k] || 0), 0);
  console.log(`Vigil-Overview server time (access log, /api routes in the load window): ${sum('requests')} requests, ${(sum('us') / 1000).toFixed(1)} ms in total, slowest ${(Math.max(0, ...rows.map((r) => r.max_us)) / 1000).toFixed(1)} ms`);
  for (const r of rows) console.log(`  ${r.route}: ${r.requests} requests, ${(r.us / 1000).toFixed(1)} ms, slowest ${(r.max_us / 1000).toFixed(1)} ms`);
  await page.goto(`${base}/`);
  await page.waitForSelector('main[data-loaded]', { timeout: 20000 });
  await context.close();

  const seconds = Number(windowS);
  const tick = Number(clkTck);
  let before = cpuTicks();
  await sleep(seconds * 1000);
  const closed = cpuTicks() - before;
  const open = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const live = await open.newPage();
  await live.goto(`${base}/#/dashboards/Vigil-Overview?range=3h&tz=utc&refresh=10s`);
  await live.waitForSelector('main[data-loaded]', { timeout: 20000 });
  const loads = new Set();
  before = cpuTicks();
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const v = await live.getAttribute('main', 'data-loaded').catch(() => null);
    if (v) loads.add(v);
    await sleep(500);
  }
  const opened = cpuTicks() - before;
  await open.close();
  const pct = (t) => (100 * t) / tick / seconds;
  console.log(`server CPU over ${seconds} s: console closed ${closed} ticks (${pct(closed).toFixed(2)}% of a core), overview open refreshing every 10 s ${opened} ticks (${pct(opened).toFixed(2)}% of a core, ${loads.size} loads seen); the console's cost ${pct(opened - closed).toFixed(2)}% of a core`);
} finally {
  await browser.close();
}
