// Drives Debian's Chromium (playwright-core, no bundled browser) against a
// running vigil: run by crates/vigil/tests/console_browser.rs, which starts
// the binary, sends the traffic and passes what it sent.
//
//   node console.mjs ADDR SUCCESSES ERRORS SCREENSHOT_DIR PHASE
//
// PHASE `counts`: the seed dashboard shows exactly SUCCESSES and ERRORS,
// the latency graph has points, no CSP violation or script error happened;
// screenshots of both built-in dashboards.
// PHASE `alarm`: with auto-refresh on, the seed dashboard's alarm widget
// turns ALARM for both runbook alarms (the caller pushed breaching data);
// then the log query editor's table (added to a dashboard as a log widget,
// which counts the same), the alarms page and the metrics explorer (graph
// a series, add it to a dashboard).
// PHASE `traces`: the traces page lists the requests answered 200, the
// service map draws the client, Vigil and its stages with the client's
// edge counting at least every scoring request; "add to dashboard" makes a trace-list
// widget of the filter, and a trace clicked in it opens its waterfall, a
// bar per stage span; screenshots of the waterfall and the map.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [addr, successes, errors, shots, phase] = process.argv.slice(2);
const base = `http://${addr}`;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.VIGIL_TEST_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const problems = [];
function fail(message) {
  throw new Error(message);
}

try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const seed = `${base}/#/dashboards/Inference-Monitoring-Dashboard?range=1h&tz=utc`;
  const ready = async () => {
    await page.waitForSelector('main[data-loaded]', { timeout: 20000 });
    const broken = await page.$$eval('[data-ready="error"]', (cells) => cells.map((c) => c.textContent));
    if (broken.length) fail(`widgets failed: ${broken.join(' | ')}`);
  };
  const single = (title) => page.$eval(`section[aria-label="${title}"] [data-testid="single-value"]`, (n) => n.textContent);

  if (phase === 'counts') {
    const response = await page.goto(seed);
    const csp = response.headers()['content-security-policy'] || '';
    if (!csp.startsWith("default-src 'self'")) fail(`no strict CSP on the page: ${csp}`);
    await ready();
    const ok = await single('SuccessCount');
    const err = await single('ErrorCount');
    if (ok !== successes) fail(`SuccessCount shows ${ok}, expected ${successes}`);
    if (err !== errors) fail(`ErrorCount shows ${err}, expected ${errors}`);
    const points = Number(await page.$eval('section[aria-label="LatencyMs"] .widget-body', (n) => n.dataset.points));
    if (!(points > 0)) fail(`the latency graph has ${points} points`);
    if (!(await page.$('section[aria-label="LatencyMs"] canvas'))) fail('the latency graph drew no canvas');
    const rangeText = await page.textContent('[data-testid="range"]');
    if (!rangeText.includes('UTC')) fail(`the range does not say UTC: ${rangeText}`);
    await page.screenshot({ path: join(shots, 'inference-monitoring-dashboard.png'), fullPage: true });
    // Keyboard: the range picker is reachable and changes the URL.
    await page.focus('#range');
    await page.selectOption('#range', '3h');
    await page.waitForFunction(() => location.hash.includes('range=3h'));
    await ready();
    await page.goto(`${base}/#/dashboards/Vigil-Overview?range=1h&tz=utc`);
    await ready();
    const cells = await page.$$eval('section.widget', (c) => c.length);
    if (cells < 10) fail(`the overview drew ${cells} widgets`);
    await page.screenshot({ path: join(shots, 'vigil-overview.png'), fullPage: true });
    console.log(`counts: SuccessCount ${ok}, ErrorCount ${err}, ${points} latency points, overview ${cells} widgets`);
  } else if (phase === 'alarm') {
    await page.goto(`${seed}&refresh=10s`);
    const deadline = Date.now() + 150000;
    let states = {};
    const seen = new Set();
    for (;;) {
      await ready();
      states = Object.fromEntries(await page.$$eval('tr[data-alarm]', (rows) => rows.map((r) => [r.dataset.alarm, r.querySelector('[data-state]').dataset.state])));
      // Each alarm must be seen in ALARM; not necessarily at once (the
      // error alarm returns to OK when a later minute has no errors).
      for (const [name, state] of Object.entries(states)) if (state === 'ALARM') seen.add(name);
      if (seen.has('High-Latency-Alarm') && seen.has('Inference-Error-Alarm')) break;
      if (Date.now() > deadline) fail(`the alarm widget showed ALARM for ${[...seen].join(', ') || 'none'} in 150 s (now ${JSON.stringify(states)})`);
      // The page refreshes itself every 10 s: wait for the next load.
      const before = await page.getAttribute('main', 'data-loaded');
      await page.waitForFunction((b) => { const m = document.querySelector('main'); return m.dataset.loaded && m.dataset.loaded !== b; }, before, { timeout: 20000 });
    }
    await page.screenshot({ path: join(shots, 'inference-monitoring-dashboard-alarm.png'), fullPage: true });
    // The log query editor: the access log's scoring requests with a 4xx.
    await page.goto(`${base}/#/logs?range=1h&tz=utc`);
    await ready();
    await page.fill('textarea[name="query"]', "filter status >= 400 and status < 500 and route = '/v1/models/{name}/score' | stats count(*) as failed");
    await page.fill('input[name="groups"]', '/vigil/access');
    await page.click('form.log-query button[type="submit"]');
    await page.waitForSelector('[data-testid="log-results"] table', { timeout: 20000 });
    const failed = await page.$eval('[data-testid="log-results"] tbody td', (n) => n.textContent);
    if (failed !== errors) fail(`the log query counts ${failed} failed scoring requests, expected ${errors}`);
    await page.screenshot({ path: join(shots, 'logs.png'), fullPage: true });
    // "Add to dashboard" from the Logs page: a log widget naming its group.
    await page.fill('input[name="dashboard"]', 'Logs-Test');
    await page.click('form.add-to-dashboard button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="added"]').textContent !== '', null, { timeout: 20000 });
    const logAdded = await page.textContent('[data-testid="added"]');
    if (logAdded !== 'added to Logs-Test (1 widgets)') fail(`add to dashboard from the logs page: ${logAdded}`);
    const logWidget = await page.evaluate(async () => (await (await fetch('/api/dashboards/Logs-Test')).json()).body.widgets[0]);
    const wantQuery = "SOURCE '/vigil/access' | filter status >= 400 and status < 500 and route = '/v1/models/{name}/score' | stats count(*) as failed";
    if (logWidget.type !== 'log' || logWidget.properties.query !== wantQuery || logWidget.properties.view !== 'table') fail(`the added log widget is ${JSON.stringify(logWidget)}`);
    await page.goto(`${base}/#/dashboards/Logs-Test?range=1h&tz=utc`);
    await ready();
    const counted = await page.$eval('section.widget tbody td', (n) => n.textContent);
    if (counted !== errors) fail(`the added log widget counts ${counted}, expected ${errors}`);
    await page.goto(`${base}/#/alarms/High-Latency-Alarm?range=1h&tz=utc`);
    await ready();
    if (!(await page.$('main canvas'))) fail('the alarm page drew no graph');
    await page.screenshot({ path: join(shots, 'alarm.png'), fullPage: true });
    // The metrics explorer: graph a stored series, add it to a new dashboard.
    await page.goto(`${base}/#/metrics?range=1h&tz=utc`);
    await ready();
    await page.selectOption('select[name="series"]', 'InferencePipeline LatencyMs');
    await page.fill('input[name="stat"]', 'p99');
    await page.click('form.explorer button[type="submit"]');
    await page.waitForSelector('[data-testid="explorer-chart"] canvas', { timeout: 20000 });
    await page.fill('input[name="dashboard"]', 'Explorer-Test');
    await page.click('form.add-to-dashboard button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="added"]').textContent !== '', null, { timeout: 20000 });
    const added = await page.textContent('[data-testid="added"]');
    if (added !== 'added to Explorer-Test (1 widgets)') fail(`add to dashboard: ${added}`);
    const stored = await page.evaluate(async () => (await (await fetch('/api/dashboards/Explorer-Test')).json()).body.widgets[0].properties.metrics);
    if (JSON.stringify(stored) !== JSON.stringify([['InferencePipeline', 'LatencyMs', { stat: 'p99' }]])) fail(`the added widget graphs ${JSON.stringify(stored)}`);
    await page.screenshot({ path: join(shots, 'metrics-explorer.png'), fullPage: true });
    console.log(`alarm: seen in ALARM ${[...seen].join(', ')}; log query: ${failed} failed scoring requests; explorer: ${added}`);
  } else if (phase === 'traces') {
    // Every request was sampled (the caller set the Default rule to 100%).
    const total = Number(successes) + Number(errors);
    // The console's own API calls are traced too: only the scoring requests.
    const filter = 'annotation.model = "fraud" AND http.status = 200';
    await page.goto(`${base}/#/traces?range=1h&tz=utc&filter=${encodeURIComponent(filter)}`);
    await ready();
    const links = await page.$$eval('main table a[href^="#/traces/"]', (a) => a.length);
    if (links !== Number(successes)) fail(`the traces list has ${links} traces answered 200, expected ${successes}`);
    // The service map: the client, Vigil and its stages, the client's edge counts every request.
    const nodes = await page.$$eval('.service-map svg text', (t) => t.map((n) => n.textContent));
    for (const want of ['client', 'vigil']) if (!nodes.includes(want)) fail(`the service map has no node ${want}: ${nodes.join(', ')}`);
    if (!nodes.some((n) => n.startsWith('vigil::'))) fail(`the service map has no stage node: ${nodes.join(', ')}`);
    const edges = await page.$$eval('.service-map table tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    const client = edges.find((e) => e[0] === 'client' && e[1] === 'vigil');
    // Every request is on it: the scoring ones and the console's own.
    if (!client || !(Number(client[2]) >= total)) fail(`the client → vigil edge counts ${client && client[2]}, expected at least ${total}: ${JSON.stringify(edges)}`);
    if (!nodes.includes(client[2])) fail(`the drawn edge shows no count ${client[2]}: ${nodes.join(', ')}`);
    await page.locator('.service-map').screenshot({ path: join(shots, 'service-map.png') });
    // "Add to dashboard" from the Traces page: a trace-list widget with the filter.
    await page.fill('input[name="dashboard"]', 'Traces-Test');
    await page.click('form.add-to-dashboard button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="added"]').textContent !== '', null, { timeout: 20000 });
    const added = await page.textContent('[data-testid="added"]');
    if (added !== 'added to Traces-Test (1 widgets)') fail(`add to dashboard: ${added}`);
    const widget = await page.evaluate(async () => (await (await fetch('/api/dashboards/Traces-Test')).json()).body.widgets[0]);
    if (widget.type !== 'trace-list' || widget.properties.filter !== filter) fail(`the added widget is ${JSON.stringify(widget)}`);
    await page.goto(`${base}/#/dashboards/Traces-Test?range=1h&tz=utc`);
    await ready();
    const listed = await page.$$eval('section.widget table a[href^="#/traces/"]', (a) => a.length);
    if (listed !== Number(successes)) fail(`the trace-list widget lists ${listed} traces, expected ${successes}`);
    // A trace's waterfall: click one in the list; a bar per span, named by stage.
    await page.click('section.widget table a[href^="#/traces/"]');
    await page.waitForSelector('[data-testid="waterfall"] li', { timeout: 20000 });
    await ready();
    // The link keeps the view: the range and the time zone.
    const hash = await page.evaluate(() => location.hash);
    if (!/^#\/traces\/[0-9a-f]+\?range=1h&tz=utc$/.test(hash)) fail(`the trace link lost the view: ${hash}`);
    const spans = await page.$$eval('[data-testid="waterfall"] li', (items) => items.map((li) => ({
      label: li.querySelector('.span-label').textContent,
      width: li.querySelector('.span-bar').getBoundingClientRect().width,
    })));
    const stages = ['vigil', 'gateway', 'parse', 'idempotency', 'cache', 'score', 'inference_log', 'response'];
    for (const stage of stages) {
      if (!spans.some((s) => s.label.includes(` ${stage} — `))) fail(`the waterfall has no ${stage} span: ${spans.map((s) => s.label).join(' | ')}`);
    }
    const empty = spans.filter((s) => !(s.width > 0));
    if (empty.length) fail(`spans drawn without a bar: ${empty.map((s) => s.label).join(' | ')}`);
    await page.screenshot({ path: join(shots, 'traces.png'), fullPage: true });
    // From the trace to its inference-log record (the shared trace id),
    // which links back to the same trace.
    const traceId = hash.match(/^#\/traces\/([0-9a-f]+)/)[1];
    await page.waitForSelector('[data-testid="trace-inference"]', { timeout: 20000 });
    await page.click('[data-testid="trace-inference"]');
    await page.waitForSelector(`main a[href^="#/traces/${traceId}"]`, { timeout: 20000 });
    console.log(`traces: ${links} traces answered 200, map nodes ${nodes.filter((n) => !/^\d+$/.test(n)).join(', ')}, client → vigil ${client[2]}; waterfall ${spans.length} spans; ${added}`);
  } else {
    fail(`unknown phase ${phase}`);
  }
  if (problems.length) fail(problems.join('\n'));
} finally {
  await browser.close();
}
