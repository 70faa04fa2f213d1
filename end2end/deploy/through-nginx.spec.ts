import { expect, test } from '@playwright/test';
import { gotoHydrated, signUp, uniqueEmail } from '../tests/helpers';

test('a browser signs up, chats and stays signed in over HTTP/2 and TLS through nginx', async ({ page, context }) => {
  await signUp(page, uniqueEmail('deploy'));

  // The session cookie is Secure and HttpOnly; pages come over HTTP/2.
  const session = (await context.cookies()).find((cookie) => cookie.name === 'keyward_session');
  expect(session?.secure).toBe(true);
  expect(session?.httpOnly).toBe(true);
  const protocol = await page.evaluate(
    () => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol,
  );
  expect(protocol).toBe('h2');

  // A reply streams in through nginx (the mock sends a word every 200 ms):
  // text shows while the reply is still streaming.
  await gotoHydrated(page, '/chat');
  await page.getByLabel('Message').fill(`mock:echo ${'word '.repeat(12)}mock:slow`);
  await page.getByRole('button', { name: 'Send' }).click();
  const streaming = page.locator('article.msg-assistant[data-status="streaming"] .markdown');
  await expect(streaming).toContainText('word');
  const reply = page.locator('article.msg-assistant').last();
  await expect(reply).toHaveAttribute('data-status', 'complete', { timeout: 30_000 });
  await expect(reply).toHaveAttribute('data-paid-by', 'platform');

  // Reloads land on either instance; the conversation and session hold.
  for (let i = 0; i < 4; i++) {
    await page.reload();
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
    await expect(page.locator('article.msg-assistant')).toHaveCount(1);
    await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
  }
});
