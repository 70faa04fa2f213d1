import { expect, test } from '@playwright/test';
import { gotoHydrated, logIn, signUp, uniqueEmail } from './helpers';

test('sign up, log out, log in again', async ({ page }) => {
  const email = uniqueEmail('ada');
  await signUp(page, email);
  await expect(page).toHaveURL(/\/chat$/);

  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('button', { name: 'Log in' })).toBeVisible();

  // The old session is gone: protected pages send us back to login.
  await page.goto('/settings');
  await expect(page).toHaveURL(/\/login$/);

  await logIn(page, email);
  await expect(page).toHaveURL(/\/chat$/);
  await expect(page.getByText(email)).toBeVisible();
});

test('a wrong password shows an alert and keeps what was typed', async ({ page }) => {
  const email = uniqueEmail('bob');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);

  await gotoHydrated(page, '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Email or password is incorrect.');
  await expect(page.getByLabel('Email')).toHaveValue(email);
  await expect(page).toHaveURL(/\/login$/);
});

test('signup explains a weak password', async ({ page }) => {
  await gotoHydrated(page, '/signup');
  await page.getByLabel('Email').fill(uniqueEmail('weak'));
  await page.getByLabel('Password').fill('password123');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('alert')).toContainText('too common');
});

test('phone-sized layout', async ({ page }, testInfo) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signUp(page, uniqueEmail('phone'));
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
  for (const path of ['/chat', '/settings']) {
    await gotoHydrated(page, path);
    // Nothing overflows sideways on a phone.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${path} is wider than the phone`).toBeLessThanOrEqual(0);
    const name = `phone${path.replace('/', '-')}`;
    const shot = testInfo.outputPath(`${name}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    await testInfo.attach(name, { path: shot, contentType: 'image/png' });
  }
});

test('the page sets a CSP with a nonce and still hydrates', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  const response = await page.goto('/login');
  const csp = response?.headers()['content-security-policy'] ?? '';
  expect(csp).toContain("'nonce-");
  expect(csp).not.toContain('unsafe-inline');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  expect(errors.filter((e) => e.includes('Content Security Policy'))).toEqual([]);
});
