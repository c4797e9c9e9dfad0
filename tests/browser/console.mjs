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
// then the log query editor's table and the alarms page.
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
    if (cells < 8) fail(`the overview drew ${cells} widgets`);
    await page.screenshot({ path: join(shots, 'vigil-overview.png'), fullPage: true });
    console.log(`counts: SuccessCount ${ok}, ErrorCount ${err}, ${points} latency points, overview ${cells} widgets`);
  } else if (phase === 'alarm') {
    await page.goto(`${seed}&refresh=10s`);
    const deadline = Date.now() + 150000;
    let states = {};
    for (;;) {
      await ready();
      states = Object.fromEntries(await page.$$eval('tr[data-alarm]', (rows) => rows.map((r) => [r.dataset.alarm, r.querySelector('[data-state]').dataset.state])));
      if (states['High-Latency-Alarm'] === 'ALARM' && states['Inference-Error-Alarm'] === 'ALARM') break;
      if (Date.now() > deadline) fail(`the alarm widget shows ${JSON.stringify(states)} after 150 s`);
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
    await page.goto(`${base}/#/alarms/High-Latency-Alarm?range=1h&tz=utc`);
    await ready();
    if (!(await page.$('main canvas'))) fail('the alarm page drew no graph');
    await page.screenshot({ path: join(shots, 'alarm.png'), fullPage: true });
    console.log(`alarm: ${JSON.stringify(states)}; log query: ${failed} failed scoring requests`);
  } else {
    fail(`unknown phase ${phase}`);
  }
  if (problems.length) fail(problems.join('\n'));
} finally {
  await browser.close();
}
