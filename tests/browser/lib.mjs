// Shared pieces of the real-browser tests: Debian's Chromium (/usr/bin/chromium, installed by
// `scripts/services.sh up`) driven by playwright-core, which never downloads a browser.
//
//   import { run, step, screenshot, env } from './lib.mjs';
//   await run(async (browser) => {
//     const page = await newPage(browser);
//     await step('open the page', () => page.goto(env('SOME_URL')));
//   });
//
// Steps and diagnostics go to stderr; stdout is left to what a script reports (the Rust helper
// tests/common/browser.rs returns it).

import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

// The switches every browser test runs Chromium with: headless, no sandbox (tests run as root),
// and nothing that would reach out to the network on its own.
export const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

// How long one action or wait on a page may take (ms) before it fails.
export const TIMEOUT = 15_000;

// A headless Chromium (a playwright Browser). Playwright gives each launch a fresh, empty
// user-data-dir of its own in the temp directory and deletes it on close.
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 30_000,
  });
}

// A page in a new, clean context of `browser`, with TIMEOUT as its default timeout; the page's
// console errors and uncaught exceptions are shown on stderr.
export async function newPage(browser, options = {}) {
  const page = await browser.newPage(options);
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`page console error: ${m.text()}`);
  });
  return page;
}

// Runs `fn` as one named step: prints the step (stderr), and rethrows its error with the step's
// name in front. Returns what `fn` returns.
export async function step(name, fn) {
  console.error(`step: ${name}`);
  try {
    return await fn();
  } catch (e) {
    throw new Error(`step "${name}" failed: ${e?.message ?? e}`, { cause: e });
  }
}

// A PNG of the whole page at `path` (its directory made if missing).
export async function screenshot(page, path) {
  await mkdir(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
}

// The value of environment variable `name`; throws if it is unset or empty.
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}

// Launches the browser, runs `fn(browser)`, and always closes the browser. On failure prints
// "FAILED: <message>" (and the stack) on stderr and sets a non-zero exit code.
export async function run(fn) {
  let browser;
  try {
    browser = await step('launch chromium', launch);
    await fn(browser);
  } catch (e) {
    console.error(`FAILED: ${e?.message ?? e}`);
    if (e?.cause?.stack) console.error(e.cause.stack);
    process.exitCode = 1;
  } finally {
    await browser?.close().catch((e) => console.error(`closing the browser: ${e.message}`));
  }
}
