import { expect, test, type Page } from '@playwright/test';
import { MOCK_KEYS } from '../playwright.config';
import { gotoHydrated, signUp, uniqueEmail } from './helpers';

async function chat(page: Page, text: string) {
  await page.getByLabel('Message').fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

test('a free user reaches the limit, adds a key and chats on; badges say who paid', async ({ page }) => {
  await signUp(page, uniqueEmail('limit'));
  await gotoHydrated(page, '/chat');
  const replies = page.locator('article.msg-assistant');
  for (let i = 1; i <= 4; i++) {
    await chat(page, `free question ${i}`);
    await expect(replies).toHaveCount(i);
    await expect(replies.last()).toHaveAttribute('data-status', 'complete');
  }
  await expect(replies.last()).toHaveAttribute('data-paid-by', 'platform');

  await chat(page, 'one more please');
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('4 free requests for today');
  await expect(alert).toContainText('00:00 UTC');
  await expect(alert).toContainText('own Anthropic API key');
  await expect(page.getByLabel('Message')).toHaveValue('one more please');

  await gotoHydrated(page, '/settings');
  await expect(page.getByText('4 of 4')).toBeVisible();
  await page.getByLabel('Anthropic API key').fill(MOCK_KEYS.user);
  await page.getByRole('button', { name: 'Save key' }).click();
  await expect(page.getByTestId('masked-key')).toHaveText('sk-ant-…WXYZ');

  await gotoHydrated(page, '/chat');
  await chat(page, 'on my own key now');
  const mine = page.locator('article.msg-assistant[data-paid-by="user"]');
  await expect(mine).toHaveAttribute('data-status', 'complete');
  await expect(mine.getByText('your key')).toBeVisible();
  await expect(mine.locator('.badge-user')).toHaveAttribute('title', /output tokens · \$0\.\d{4}/);
});
