// The dashboard and the live page in a real browser, while the two-process example runs (see
// tests/dashboard_browser.rs, which starts it):
// 1. the overview's counters move while the publisher writes, without a reload (SSE);
// 2. with the token entered, a dead letter is replayed with a click and is gone;
// 3. the live page's list changes when a row changes on the publisher, without a reload.
// Env: BASE (http://127.0.0.1:PORT), APP (the subscriber app), TOKEN, LETTER (the dead
// letter's id), SHOT (where the screenshot of the overview goes).

import { run, step, screenshot, env, newPage } from './lib.mjs';

const BASE = env('BASE');
const APP = env('APP');
const TOKEN = env('TOKEN');
const LETTER = env('LETTER');
const SHOT = env('SHOT');

// The text of `selector`, trimmed ('' if absent).
const text = (page, selector) =>
  page.$eval(selector, (e) => e.textContent.trim()).catch(() => '');

await run(async (browser) => {
  const page = await newPage(browser, { viewport: { width: 1280, height: 800 } });
  const processed = `#subscribers tr[data-app="${APP}"] td[data-field="processed"]`;

  await step('open the overview', async () => {
    await page.goto(`${BASE}/promiscuous/`);
    await page.waitForSelector(processed);
    await page.waitForSelector('#publishers tr[data-app="crowdtap"]');
  });

  await step('the counters move without a reload', async () => {
    await page.evaluate(() => { window.notReloaded = true; });
    const before = Number(await text(page, processed));
    await page.waitForFunction(
      ([sel, n]) => Number(document.querySelector(sel)?.textContent) > n,
      [processed, before],
      { timeout: 30_000 },
    );
    const after = Number(await text(page, processed));
    if (!(await page.evaluate(() => window.notReloaded === true))) {
      throw new Error('the page reloaded');
    }
    console.log(`processed ${before} -> ${after} (live)`);
    await page.waitForSelector('#live-status:text-matches("live")');
  });

  await step('the workers page shows both workers and the lease holder', async () => {
    await page.goto(`${BASE}/promiscuous/workers`);
    await page.waitForSelector(`#workers tr[data-worker^="subscriber:${APP}:"]`);
    await page.waitForSelector('#workers tr[data-worker^="relay:crowdtap:"] >> text=holds the lease');
  });

  await step('read-only without the token: no replay button', async () => {
    await page.goto(`${BASE}/promiscuous/dead-letters`);
    await page.waitForSelector(`tr[data-dead-letter="${LETTER}"]`);
    if (await page.$('button[data-action="replay"]')) {
      throw new Error('a replay button without the token');
    }
  });

  await step('enter the token', async () => {
    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([page.waitForNavigation(), page.click('text=Unlock actions')]);
  });

  await step('replay the dead letter with a click: it is gone', async () => {
    await page.goto(`${BASE}/promiscuous/dead-letters`);
    const row = `tr[data-dead-letter="${LETTER}"]`;
    await page.waitForSelector(row);
    await Promise.all([
      page.waitForNavigation(),
      page.click(`${row} button[data-action="replay"]`),
    ]);
    const flash = await text(page, '.flash');
    if (!flash.includes('applied')) throw new Error(`after the replay: "${flash}"`);
    if (await page.$(row)) throw new Error('the dead letter is still listed');
    console.log(`replayed: ${flash}`);
  });

  await step('the overview, for the screenshot', async () => {
    await page.goto(`${BASE}/promiscuous/`);
    await page.waitForSelector(processed);
    // Some samples in the throughput graph.
    await page.waitForTimeout(4000);
    await screenshot(page, SHOT);
  });

  await step('the live page follows a change without a reload', async () => {
    const live = await newPage(browser);
    await live.goto(`${BASE}/`);
    await live.evaluate(() => { window.notReloaded = true; });
    await live.waitForFunction(
      () => document.getElementById('last').textContent !== 'none yet',
      null,
      { timeout: 30_000 },
    );
    const last = await text(live, '#last');
    if (!(await live.evaluate(() => window.notReloaded === true))) {
      throw new Error('the live page reloaded');
    }
    const replayed = await text(live, '[data-crowdtap-id="990001"]');
    if (!replayed.includes('Replayed')) throw new Error(`the replayed member: "${replayed}"`);
    console.log(`live page: ${last}`);
  });
});
