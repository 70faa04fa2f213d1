import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Page } from '@playwright/test';
import { ADMIN } from '../playwright.config';
import { gotoHydrated, logIn, signUp, uniqueEmail } from './helpers';

/** Every page is checked at both widths, in both colour schemes. */
const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
];
const SCHEMES = ['light', 'dark'] as const;

/**
 * Opens `path` and runs axe (WCAG 2.1 A and AA) on it in every viewport
 * and colour scheme; fails listing each rule broken, where and why.
 */
async function expectAccessible(page: Page, path: string): Promise<void> {
  await gotoHydrated(page, path);
  const found: string[] = [];
  for (const viewport of VIEWPORTS) {
    await page.setViewportSize({ width: viewport.width, height: viewport.height });
    for (const colorScheme of SCHEMES) {
      await page.emulateMedia({ colorScheme });
      const results = await new AxeBuilder({ page })
        .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
        .analyze();
      for (const violation of results.violations) {
        const where = violation.nodes
          .map((node) => `${node.target.join(' ')}: ${node.failureSummary?.split('\n').slice(1).join(' ')}`)
          .join('; ');
        found.push(`${path} ${viewport.name} ${colorScheme}: ${violation.id} (${violation.help}) at ${where}`);
      }
    }
  }
  expect(found, found.join('\n')).toEqual([]);
}

test('pages for everyone pass axe', async ({ page }) => {
  for (const path of ['/login', '/signup']) {
    await expectAccessible(page, path);
  }
});

test("a user's pages pass axe, with a conversation on screen", async ({ page }) => {
  test.setTimeout(90_000);
  await signUp(page, uniqueEmail('axe'));
  await gotoHydrated(page, '/chat');
  await page.getByLabel('Message').fill('hello accessibility');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.locator('article.msg-assistant')).toHaveAttribute('data-status', 'complete');
  await expectAccessible(page, page.url().replace(/^https?:\/\/[^/]+/, ''));
  await expectAccessible(page, '/settings');
});

test("an admin's pages pass axe", async ({ page }) => {
  test.setTimeout(120_000);
  await logIn(page, ADMIN.email, ADMIN.password);
  for (const path of ['/admin', '/admin/plans', '/admin/audit']) {
    await expectAccessible(page, path);
  }
  // A user's page: the admin's own (it is there whatever else ran).
  await gotoHydrated(page, '/admin');
  const own = page.locator(`tr[data-email="${ADMIN.email}"] a`).first();
  const href = await own.getAttribute('href');
  expect(href).toMatch(/^\/admin\/users\/\d+/);
  await expectAccessible(page, href!);
});
