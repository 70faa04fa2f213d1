import { expect, test } from '@playwright/test';
import { MOCK_KEYS } from '../playwright.config';
import { gotoHydrated, signUp, uniqueEmail } from './helpers';

test('paste a key, see it masked after reload, then remove it', async ({ page }) => {
  await signUp(page, uniqueEmail('keys'));
  await gotoHydrated(page, '/settings');
  await expect(page.getByText('No key saved')).toBeVisible();

  const input = page.getByLabel('Anthropic API key');
  await expect(input).toHaveAttribute('type', 'password');
  await expect(input).toHaveAttribute('autocomplete', 'off');
  await input.fill(MOCK_KEYS.user);
  await page.getByRole('button', { name: 'Save key' }).click();

  await expect(page.getByTestId('masked-key')).toHaveText('sk-ant-…WXYZ');
  await expect(input).toHaveValue('');
  expect(await page.content()).not.toContain(MOCK_KEYS.user);

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.getByTestId('masked-key')).toHaveText('sk-ant-…WXYZ');
  expect(await page.content()).not.toContain(MOCK_KEYS.user);

  await page.getByRole('button', { name: 'Remove key' }).click();
  await expect(page.getByText('No key saved')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Remove key' })).toHaveCount(0);
});

test('a subscription token is refused with the explanation', async ({ page }) => {
  await signUp(page, uniqueEmail('oat'));
  await gotoHydrated(page, '/settings');
  await page.getByLabel('Anthropic API key').fill('sk-ant-oat01-abcdefghijklmnopqrstuvwxyz');
  await page.getByRole('button', { name: 'Save key' }).click();
  await expect(page.getByRole('alert')).toContainText('subscription');
  await expect(page.getByRole('alert')).toContainText('Anthropic Console');
  await expect(page.getByText('No key saved')).toBeVisible();
});

test('a key Anthropic rejects is not saved', async ({ page }) => {
  await signUp(page, uniqueEmail('bad'));
  await gotoHydrated(page, '/settings');
  await page.getByLabel('Anthropic API key').fill('sk-ant-api03-unknown-to-the-mock-0000-NOPE');
  await page.getByRole('button', { name: 'Save key' }).click();
  await expect(page.getByRole('alert')).toContainText('Anthropic rejected this key');
  await expect(page.getByText('No key saved')).toBeVisible();
});

test('caps on your own key: a typo is explained and kept, and a cap stops a chat that could go over it', async ({ page }) => {
  await signUp(page, uniqueEmail('caps'));
  await gotoHydrated(page, '/settings');
  await page.getByLabel('Anthropic API key').fill(MOCK_KEYS.user);
  await page.getByRole('button', { name: 'Save key' }).click();
  await expect(page.getByTestId('masked-key')).toHaveText('sk-ant-…WXYZ');

  const tokens = page.getByLabel('Daily token cap');
  const usd = page.getByLabel('Daily spending cap (USD)');
  await tokens.fill('about 4k');
  await page.getByRole('button', { name: 'Save caps' }).click();
  await expect(page.getByRole('alert')).toContainText('whole number of tokens');
  await expect(tokens).toHaveValue('about 4k');

  await tokens.fill('4000');
  await usd.fill('2.50');
  await page.getByRole('button', { name: 'Save caps' }).click();
  await expect(page.getByText('Caps saved')).toBeVisible();
  await expect(page.getByText('0 of 4000')).toBeVisible();
  await expect(page.getByText('$0 of $2.50')).toBeVisible();

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(tokens).toHaveValue('4000');
  await expect(usd).toHaveValue('2.50');

  // A chat turn on the own key may use up to 4096 output tokens: over the cap.
  await gotoHydrated(page, '/chat');
  await page.getByLabel('Message').fill('hi');
  await page.getByRole('button', { name: 'Send' }).click();
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('daily cap of 4000 tokens');
  await expect(alert).toContainText('00:00 UTC');
  await expect(page.getByLabel('Message')).toHaveValue('hi');
});
