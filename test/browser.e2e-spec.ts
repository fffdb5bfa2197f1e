import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Message, MessagePage } from '../client/src/index.js';
import { buildDemoPage, collectPageErrors, launchBrowser, screenshot } from './harness/browser.js';
import { startApp, type TestApp } from './harness/app.js';

/**
 * The page globals this suite reads inside the browser. The file is compiled without the DOM's
 * types (and the page's CSP forbids evaluating strings), so callbacks cast `globalThis` to this.
 */
interface PageGlobals {
  readonly document: {
    querySelector(selector: string): { readonly textContent: string | null } | null;
    readonly documentElement: { readonly scrollWidth: number; readonly clientWidth: number };
  };
  readonly sessionStorage: { getItem(key: string): string | null };
}

/**
 * The demo page in a real headless Chromium against the real app on the offline demo provider,
 * whose image chain is `demo/flaky-painter` (always fails) then `demo/painter`, with composing on:
 * a plan of four attempts (each model composed, then original), the third (painter, composed) wins.
 *
 * The Stop and reload tests use the durable-turn routes of docs/api-reference.md §8a (`…/cancel`,
 * `…/events`, `on_disconnect: "continue"`): they pass once those routes are in the service.
 */

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

let app: TestApp;
let browser: Browser;

async function rest<T>(path: string, token: string): Promise<T> {
  const response = await fetch(`${app.baseUrl}/v1${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

/** A signed-in page (the development token button) with a new session open. */
async function signedIn(
  context: BrowserContext,
  title: string,
): Promise<{ page: Page; token: string; sessionId: string; errors: string[] }> {
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(`${app.baseUrl}/`);
  await page.getByRole('button', { name: 'Use the development token' }).click();
  await page.locator('#workspace').waitFor();
  await page.locator('#new-session-title').fill(title);
  await page.locator('#new-session button[type=submit]').click();
  await page.locator('.session-list li.active', { hasText: title }).waitFor();
  const token = await page.evaluate(() =>
    (globalThis as unknown as PageGlobals).sessionStorage.getItem('easel.token'),
  );
  const sessionId = decodeURIComponent(new URL(page.url()).hash.slice(1));
  expect(token).toBeTruthy();
  expect(sessionId).not.toBe('');
  return { page, token: token!, sessionId, errors };
}

async function send(page: Page, text: string, mode: 'Text' | 'Image' | 'Auto'): Promise<void> {
  await page.locator('#mode label', { hasText: mode }).click();
  await page.locator('#content').fill(text);
  await page.locator('#send').click();
}

/** Waits until the live reply's text matches (it streams in). */
async function textMatches(page: Page, pattern: RegExp): Promise<void> {
  await page.waitForFunction(
    (source) =>
      new RegExp(source, 'i').test(
        (globalThis as unknown as PageGlobals).document.querySelector('.turn .msg.assistant .text')
          ?.textContent ?? '',
      ),
    pattern.source,
  );
}

/** Polls `check` until it holds (the server settles a stopped turn shortly after the page). */
async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function storedAssistant(token: string, sessionId: string): Promise<Message[]> {
  const { items } = await rest<MessagePage>(`/sessions/${sessionId}/messages?limit=100`, token);
  return items.filter((message) => message.role === 'assistant');
}

beforeAll(async () => {
  await buildDemoPage();
  // AUTH_JWT_SECRET empty: the server makes its own secret, so POST /dev/token exists.
  app = await startApp({
    AUTH_JWT_SECRET: '',
    DEMO_TOKEN_DELAY_MS: '30',
    DEMO_IMAGE_DELAY_MS: '1200',
  });
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

describe('the demo page in Chromium', () => {
  let context: BrowserContext;

  beforeEach(async () => {
    context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' });
  });

  afterEach(async () => {
    await context.close();
  });

  it('signs in, draws a forced image turn with previews: text, failed attempts, the picture', async () => {
    const { page, token, sessionId, errors } = await signedIn(context, 'Lighthouses');
    await send(page, 'Draw a lighthouse at dusk', 'Image');

    const reply = page.locator('.turn .msg.assistant').first();
    // The text streams: seen while the message is still streaming.
    await reply.locator('.text.streaming').waitFor();
    await textMatches(page, /lighthouse/i);

    // Attempt 1 (flaky) shows a preview, then fails; the timeline goes on to the painter.
    const attempts = reply.locator('.attempt');
    await reply.locator('.frame img.preview').waitFor();
    await attempts.nth(1).waitFor();
    await expect(attempts.nth(0).getAttribute('data-outcome')).resolves.toBe('failed');
    await screenshot(page, 'demo-drawing');
    await reply.locator('.picture[data-status="ready"]').waitFor({ timeout: 15_000 });

    const rows = await attempts.evaluateAll((items) =>
      items.map((item) => ({
        outcome: item.getAttribute('data-outcome'),
        n: item.querySelector('.attempt-n')?.textContent,
        model: item.querySelector('.attempt-model')?.textContent,
      })),
    );
    expect(rows).toEqual([
      { outcome: 'failed', n: '1 of 4', model: 'demo/flaky-painter' },
      { outcome: 'failed', n: '2 of 4', model: 'demo/flaky-painter' },
      { outcome: 'ok', n: '3 of 4', model: 'demo/painter' },
    ]);
    const image = reply.locator('.frame img.final');
    await page.waitForFunction(
      (img) => img !== null && img.complete && img.naturalWidth > 0,
      await image.elementHandle(),
    );
    await page.locator('.turn[data-status="complete"]').waitFor();
    // Tall enough for the whole turn: this one is docs/demo.png.
    await page.setViewportSize({ width: 1280, height: 1160 });
    await page.locator('#messages').evaluate((list) => (list.scrollTop = list.scrollHeight));
    await screenshot(page, 'demo');

    const [stored] = await storedAssistant(token, sessionId);
    expect(stored.status).toBe('complete');
    expect(await reply.locator('.text').innerText()).toBe(stored.content);

    // History after a reload: the stored picture and attempts come back from REST.
    await page.reload();
    const again = page.locator('#messages > .msg.assistant');
    await again.locator('.frame img.final').waitFor();
    await expect(again.locator('.attempt').count()).resolves.toBe(3);
    expect(errors).toEqual([]);
  });

  it('stops a turn mid-way: the page shows it stopped and the server stored cancelled', async () => {
    const { page, token, sessionId } = await signedIn(context, 'Stop me');
    await send(page, 'Draw a very slow sunrise over the sea', 'Image');
    const reply = page.locator('.turn .msg.assistant').first();
    await reply.locator('.text.streaming').waitFor();
    await textMatches(page, /\S/);
    await page.locator('#stop').click();

    await page.locator('.turn[data-status="cancelled"]').waitFor();
    await expect(page.locator('.turn-notice').innerText()).resolves.toMatch(/stopped/i);
    await page.locator('#send').waitFor();
    await screenshot(page, 'demo-stopped');
    const statuses = async (): Promise<string[]> =>
      (await storedAssistant(token, sessionId)).map((message) => message.status);
    await eventually(async () => (await statuses()).join() === 'cancelled');
    expect(await statuses()).toEqual(['cancelled']);
  });

  it('picks a running turn up again after a reload and completes it with no text twice', async () => {
    const { page, token, sessionId, errors } = await signedIn(context, 'Reload me');
    await send(page, 'Tell me about tides', 'Text');
    const reply = page.locator('.turn .msg.assistant').first();
    await reply.locator('.text.streaming').waitFor();
    await textMatches(page, /\S/);
    const messageId = await reply.getAttribute('data-id');

    await page.reload();
    const resumed = page.locator(`.turn .msg.assistant[data-id="${messageId}"]`);
    await resumed.waitFor({ timeout: 10_000 });
    await page.locator('.turn[data-status="complete"]').waitFor({ timeout: 15_000 });

    const [stored] = await storedAssistant(token, sessionId);
    expect(stored.id).toBe(messageId);
    expect(stored.status).toBe('complete');
    // One copy of the message, its text exactly the stored text (no frame applied twice).
    await expect(page.locator(`.msg[data-id="${messageId}"]`).count()).resolves.toBe(1);
    expect(await resumed.locator('.text').innerText()).toBe(stored.content);
    await expect(page.locator('.msg.user').count()).resolves.toBe(1);
    expect(
      await page.evaluate(() =>
        (globalThis as unknown as PageGlobals).sessionStorage.getItem('easel.running'),
      ),
    ).toBeNull();
    expect(errors).toEqual([]);
  });

  it('reads in Chinese and fits a phone', async () => {
    await context.close();
    context = await browser.newContext({ viewport: PHONE, locale: 'zh-CN', isMobile: true });
    const page = await context.newPage();
    await page.goto(`${app.baseUrl}/`);
    await page.getByRole('button', { name: '使用开发令牌' }).click();
    await page.locator('#workspace').waitFor();
    // The sessions drawer is closed on a phone; the menu opens it.
    await page.locator('#menu').click();
    await page.locator('#new-session-title').fill('灯塔');
    await page.locator('#new-session button[type=submit]').click();
    await page.locator('#content').fill('画一座黄昏时的灯塔');
    await page.locator('#send').click();
    await page.locator('.turn[data-status="complete"]').waitFor({ timeout: 15_000 });
    await expect(page.locator('.picture .badge').innerText()).resolves.toBe('完成');
    const overflow = await page.evaluate(() => {
      const { documentElement } = (globalThis as unknown as PageGlobals).document;
      return documentElement.scrollWidth - documentElement.clientWidth;
    });
    expect(overflow).toBe(0);
    await screenshot(page, 'demo-phone-zh');

    await page.locator('#language').click();
    await expect(page.locator('#send').innerText()).resolves.toBe('Send');
  });
});

describe('the demo routes', () => {
  it('serves the page and a development token only when the server made its own secret', async () => {
    const page = await fetch(`${app.baseUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('<meta name="easel-dev-token" content="on" />');

    const issued = await fetch(`${app.baseUrl}/dev/token`, { method: 'POST' });
    expect(issued.status).toBe(200);
    const { token, user_id } = (await issued.json()) as { token: string; user_id: string };
    expect(user_id).toBe('dev');
    await rest(`/sessions`, token);

    const configured = await startApp();
    try {
      const refused = await fetch(`${configured.baseUrl}/dev/token`, { method: 'POST' });
      expect(refused.status).toBe(404);
      const html = await (await fetch(`${configured.baseUrl}/`)).text();
      expect(html).toContain('<meta name="easel-dev-token" content="off" />');
    } finally {
      await configured.close();
    }
  }, 90_000);

  it('has no page with DEMO_PAGE=false', async () => {
    const bare = await startApp({ DEMO_PAGE: 'false' });
    try {
      expect((await fetch(`${bare.baseUrl}/`)).status).toBe(404);
      expect((await fetch(`${bare.baseUrl}/demo/app.js`)).status).toBe(404);
    } finally {
      await bare.close();
    }
  }, 90_000);
});
