// The dashboard in headless Chromium: node dashboard.mjs BASE_URL OUT_DIR
// Logs in, sees the simulated clusters and their heat maps, opens a
// cluster, approves the waiting proposal, watches its progress advance
// without a reload (server-sent events), finds the approval event naming
// the dashboard principal. Any console error or page error fails it.
// Screenshots land in OUT_DIR.
import { chromium } from 'playwright-core';

const [base, out] = process.argv.slice(2);
const deadline = Date.now() + 150_000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const errors = [];
let failed = null;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`page: ${e}`));

  // Not logged in: the login page.
  await page.goto(`${base}/ui/`);
  await page.waitForSelector('input[name=token]');
  await page.fill('input[name=token]', process.env.GUARDIAN_TOKEN || '');
  await Promise.all([page.waitForURL(`${base}/ui/`), page.click('button[type=submit]')]);

  // The federation: the simulated cluster with its heat maps.
  await page.waitForSelector('a[href="/ui/cluster/sim-0"]');
  await page.waitForSelector('.heat div');
  await page.screenshot({ path: `${out}/federation.png`, fullPage: true });

  // A cluster: brokers, disks, partitions, abnormal queue, throttles.
  await page.click('a[href="/ui/cluster/sim-0"]');
  await page.waitForSelector('text=Brokers');
  await page.waitForSelector('text=Hottest partitions');
  await page.screenshot({ path: `${out}/cluster.png`, fullPage: true });

  // Executions: approve the proposal guardian dev made.
  await page.goto(`${base}/ui/executions`);
  const approve = page.locator('form[action$="/approve"] button').first();
  await approve.waitFor();
  const action = await page.locator('form[action$="/approve"]').first().getAttribute('action');
  const id = action.split('/')[3];
  await Promise.all([page.waitForURL(`${base}/ui/executions/${id}`), approve.click()]);
  await page.screenshot({ path: `${out}/execution-approved.png`, fullPage: true });

  // Progress advances on this page without a reload (SSE → fragment).
  const state = () => page.locator('b.state').innerText();
  const progress = () => page.locator('span.progress').innerText();
  const first = await progress();
  while ((await state()) !== 'done' && (await progress()) === first) {
    if (Date.now() > deadline) throw new Error(`no progress shown: still ${first}, state ${await state()}`);
    await page.waitForTimeout(200);
  }
  while ((await state()) !== 'done') {
    if (Date.now() > deadline) throw new Error(`execution ${id} not done: ${await state()} ${await progress()}`);
    await page.waitForTimeout(200);
  }
  await page.screenshot({ path: `${out}/execution-done.png`, fullPage: true });

  // Events: the approval, by the dashboard's principal.
  await page.goto(`${base}/ui/events?kind=execution`);
  await page.waitForSelector('text=approved by dashboard');
  await page.screenshot({ path: `${out}/events.png`, fullPage: true });
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
if (failed) {
  console.error(`FAILED: ${failed.stack || failed}`);
  process.exit(1);
}
if (errors.length) {
  console.error(`console or page errors:\n${errors.join('\n')}`);
  process.exit(1);
}
console.log('ok');
