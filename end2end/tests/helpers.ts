import { expect, type Page } from '@playwright/test';

export const PASSWORD = 'correct horse battery staple';

/** A unique address per test, so tests can run in parallel on one server. */
export function uniqueEmail(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`;
}

/** Opens `path` and waits until hydration has finished (the app sets this flag). */
export async function gotoHydrated(page: Page, path: string): Promise<void> {
  await page.goto(path);
  // A new browser context downloads and compiles the debug wasm (14 MB)
  // afresh: on a busy 2-core VM that alone can pass the default 10 s.
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true', { timeout: 30_000 });
}

export async function signUp(page: Page, email: string, password = PASSWORD): Promise<void> {
  await gotoHydrated(page, '/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
}

export async function logIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  await gotoHydrated(page, '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible();
}
