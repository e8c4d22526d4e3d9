// The browser smoke test (run by tests/browser_smoke.rs): opens SMOKE_URL, clicks #go, waits
// until #out reads "clicked", and saves a screenshot to SMOKE_SHOT. Exits non-zero on failure.

import { env, newPage, run, screenshot, step } from './lib.mjs';

await run(async (browser) => {
  const url = env('SMOKE_URL');
  const shot = env('SMOKE_SHOT');
  const page = await newPage(browser);
  await step(`open ${url}`, () => page.goto(url));
  await step('click #go', () => page.click('#go'));
  await step('wait until #out reads "clicked"', () =>
    page.waitForFunction(() => document.querySelector('#out')?.textContent === 'clicked'),
  );
  await step(`screenshot to ${shot}`, () => screenshot(page, shot));
  console.log(`ok: ${shot}`);
});
