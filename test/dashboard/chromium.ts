import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's chromium, installed by scripts/setup.d/50-chromium.sh (override with PORTAL_CHROMIUM). */
export const CHROMIUM_PATH = process.env.PORTAL_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** A headless chromium with a fresh profile; `close()` also removes the profile. */
export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Launches chromium through playwright-core with a fresh user-data-dir. Throws (never skips) when
 * it cannot be launched: the test setup installs it, so a missing browser is a broken setup.
 */
export async function launchChromium(viewport = { width: 1440, height: 1100 }): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'portal-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      viewport,
      deviceScaleFactor: 1,
      timeout: 30_000,
    });
    return {
      context,
      async close() {
        await context.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw new Error(
      `cannot launch chromium at ${CHROMIUM_PATH} (run scripts/setup.d/50-chromium.sh): ${(err as Error).message}`,
      { cause: err },
    );
  }
}
