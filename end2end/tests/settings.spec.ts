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
