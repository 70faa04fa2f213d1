import { expect, test, type Locator, type Page } from '@playwright/test';
import { ADMIN, MOCK_KEYS } from '../playwright.config';
import { PASSWORD, gotoHydrated, uniqueEmail } from './helpers';

/**
 * Presses Tab until `target` has the focus, as someone without a mouse
 * would; fails if it is not reachable within `limit` presses.
 */
async function tabTo(page: Page, target: Locator, limit = 60): Promise<void> {
  for (let pressed = 0; pressed < limit; pressed++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((element) => element === document.activeElement)) {
      return;
    }
  }
  throw new Error(`not reachable with Tab in ${limit} presses: ${target}`);
}

/** The focused control shows a focus ring: an outline, or (fields) a ring drawn with a shadow. */
async function expectVisibleFocus(target: Locator): Promise<void> {
  const ring = await target.evaluate((element) => {
    const style = getComputedStyle(element);
    return { outline: style.outlineStyle, shadow: style.boxShadow };
  });
  expect(ring.outline !== 'none' || ring.shadow !== 'none', JSON.stringify(ring)).toBe(true);
}

test('signing up, chatting (send, stop, regenerate) and saving a key work from the keyboard alone', async ({ page }) => {
  test.setTimeout(90_000);
  await gotoHydrated(page, '/signup');
  const email = page.getByLabel('Email');
  await tabTo(page, email);
  await expectVisibleFocus(email);
  await page.keyboard.type(uniqueEmail('keyboard'));
  await tabTo(page, page.getByLabel('Password'));
  await page.keyboard.type(PASSWORD);
  await tabTo(page, page.getByRole('button', { name: 'Sign up' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();

  await gotoHydrated(page, '/chat');
  const message = page.getByLabel('Message');
  await tabTo(page, message);
  await page.keyboard.type('A long story mock:slow');
  await page.keyboard.press('Enter');
  const stop = page.getByRole('button', { name: 'Stop' });
  // Stopped once the reply has begun (a Stop before that takes the message back).
  const streaming = page.locator('article.msg-assistant[data-status="streaming"] .markdown');
  await expect(streaming).not.toBeEmpty();
  await tabTo(page, stop);
  await expectVisibleFocus(stop);
  await page.keyboard.press('Enter');
  await expect(page.locator('article.msg-assistant')).toHaveAttribute('data-status', 'stopped');
  // A screen reader hears how the reply ended (a live region), not each token.
  const announcement = page.getByTestId('reply-announcement');
  await expect(announcement).toHaveText('The reply stopped; what arrived is kept.');
  await expect(announcement).toHaveAttribute('role', 'status');

  const regenerate = page.getByRole('button', { name: 'Regenerate' });
  await tabTo(page, regenerate);
  await page.keyboard.press('Enter');
  // The stopped reply gives way to a new one, streaming (slowly) again.
  await expect(page.locator('article.msg-assistant')).toHaveCount(1);
  await expect(page.locator('article.msg-assistant')).toHaveAttribute('data-status', 'streaming');
  await expect(announcement).toHaveText('Claude is replying…');
  await expect(streaming).not.toBeEmpty();
  await tabTo(page, stop);
  await page.keyboard.press('Enter');
  await expect(page.locator('article.msg-assistant')).toHaveAttribute('data-status', 'stopped');

  await gotoHydrated(page, '/settings');
  await tabTo(page, page.getByLabel('Anthropic API key'));
  await page.keyboard.type(MOCK_KEYS.user);
  await tabTo(page, page.getByRole('button', { name: 'Save key' }));
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('masked-key')).toHaveText('sk-ant-…WXYZ');
});

test('an admin saves a plan from the keyboard alone', async ({ page }) => {
  test.setTimeout(60_000);
  await gotoHydrated(page, '/login');
  await tabTo(page, page.getByLabel('Email'));
  await page.keyboard.type(ADMIN.email);
  await tabTo(page, page.getByLabel('Password'));
  await page.keyboard.type(ADMIN.password);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();

  await gotoHydrated(page, '/admin/plans');
  const form = page.getByRole('form', { name: 'New plan' });
  const plan = `keys${Date.now() % 100000}`;
  await tabTo(page, form.getByLabel('Name'));
  await page.keyboard.type(plan);
  const haiku = form.getByLabel('Claude Haiku 4.5');
  await tabTo(page, haiku);
  await page.keyboard.press('Space');
  await expect(haiku).toBeChecked();
  await tabTo(page, form.getByRole('button', { name: 'Save plan' }));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('status')).toContainText(`Plan "${plan}" saved.`);
});
