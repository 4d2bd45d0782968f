/**
 * Debian's Chromium, driven by playwright-core (which never downloads a browser of its own here),
 * closed when the test file ends.
 */
import { after } from 'node:test';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.TASKFLEET_CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  after(() => browser.close());
  return browser;
}
