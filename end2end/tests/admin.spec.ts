import { expect, test } from '@playwright/test';
import { ADMIN } from '../playwright.config';
import { gotoHydrated, logIn, signUp, uniqueEmail } from './helpers';

test('an admin sees the dashboard, moves a user to a new plan, and the user gets its limits', async ({ browser }) => {
  // Two browser contexts, each loading the debug wasm afresh, and a dozen pages.
  test.setTimeout(120_000);
  // A user chats once, so the dashboard has something to show.
  const userContext = await browser.newContext();
  const user = await userContext.newPage();
  const email = uniqueEmail('planned');
  await signUp(user, email);
  await gotoHydrated(user, '/chat');
  await user.getByLabel('Message').fill('hello dashboard');
  await user.getByRole('button', { name: 'Send' }).click();
  await expect(user.locator('article.msg-assistant')).toHaveAttribute('data-status', 'complete');

  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await logIn(admin, ADMIN.email, ADMIN.password);
  await gotoHydrated(admin, '/admin');
  await expect(admin.getByRole('img', { name: 'Cost per day' })).toBeVisible();
  await expect(admin.getByRole('img', { name: 'Requests per day' })).toBeVisible();
  const row = admin.locator(`tr[data-email="${email}"]`);
  await expect(row).toHaveAttribute('data-requests-platform', '1');
  await expect(row).toHaveAttribute('data-requests-user', '0');
  await expect(row).toHaveAttribute('data-cost-usd', /^0\.\d{6}$/);
  // Hydration kept the server's charts and rows; another period is drawn
  // by the browser itself, with the same figures.
  await admin.getByRole('link', { name: 'Today', exact: true }).click();
  await expect(admin).toHaveURL(/\?days=1$/);
  await expect(admin.getByRole('heading', { name: /^Usage on / })).toBeVisible();
  const requestsChart = admin.getByRole('img', { name: 'Requests per day' });
  await expect(requestsChart.locator('rect.platform')).toHaveCount(1);
  await expect(requestsChart.locator('title')).toContainText(/platform [1-9]/);
  await expect(admin.getByRole('img', { name: 'Top models by requests' })).toContainText('claude-haiku-4-5');
  await expect(row).toHaveAttribute('data-requests-platform', '1');
  await expect(admin.getByTestId('platform-cost')).toHaveText(/^\$\d+\.\d{4}$/);

  // A new plan with a higher daily limit.
  const plan = `team${Date.now() % 100000}`;
  await gotoHydrated(admin, '/admin/plans');
  const form = admin.getByRole('form', { name: 'New plan' });
  await form.getByLabel('Name').fill(plan);
  await form.getByLabel('Requests per day').fill('40');
  await form.getByLabel('Claude Haiku 4.5').check();
  await form.getByLabel(/Allow Anthropic's server tools/).check();
  await form.getByRole('button', { name: 'Save plan' }).click();
  await expect(admin.getByRole('status')).toContainText(`Plan "${plan}" saved.`);
  // Server tools stay off on the free plan and are on for the new one.
  await gotoHydrated(admin, '/admin/plans');
  const serverTools = /Allow Anthropic's server tools/;
  await expect(admin.getByRole('form', { name: new RegExp(`^${plan} ·`) }).getByLabel(serverTools)).toBeChecked();
  await expect(admin.getByRole('form', { name: /^free ·/ }).getByLabel(serverTools)).not.toBeChecked();

  // Move the user onto it from their page.
  await gotoHydrated(admin, '/admin');
  await row.getByRole('link', { name: email }).click();
  await expect(admin.getByRole('heading', { name: email })).toBeVisible();
  await expect(admin.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await admin.getByLabel('Plan', { exact: true }).selectOption({ label: plan });
  await admin.getByRole('button', { name: 'Change plan' }).click();
  await expect(admin.getByText(`plan ${plan}`)).toBeVisible();

  // The user's own usage page now shows the new plan's limit.
  await gotoHydrated(user, '/settings');
  await expect(user.getByText(`(${plan} plan)`)).toBeVisible();
  await expect(user.getByText('1 of 40')).toBeVisible();
});

test('a personal token is shown once and can be revoked', async ({ page }) => {
  await signUp(page, uniqueEmail('tokens'));
  await gotoHydrated(page, '/settings');
  // The SDK example points at the address this browser uses.
  const origin = new URL(page.url()).origin;
  await expect(page.locator('pre.snippet')).toContainText(`base_url="${origin}"`);
  await page.getByLabel('Token name').fill('my laptop');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = page.getByTestId('new-token');
  await expect(token).toHaveText(/^kw_[A-Za-z0-9]{32}$/);
  const row = page.locator('tr[data-token-name="my laptop"]');
  await expect(row).toBeVisible();
  await expect(row).not.toContainText((await token.textContent()) ?? 'missing');

  // The token works against the gateway.
  const secret = (await token.textContent()) ?? '';
  const models = await page.request.get('/v1/models', { headers: { 'x-api-key': secret } });
  expect(models.status()).toBe(200);

  // The Claude Code setup carries this server's address, the token, and
  // the free plan's model; pasted as is, it works with the gateway (Claude
  // Code sends the token as a bearer token).
  const setup = (await page.getByTestId('setup-claude-code').locator('pre').textContent()) ?? '';
  const variable = (name: string) => setup.match(new RegExp(`export ${name}="([^"]+)"`))?.[1];
  expect(variable('ANTHROPIC_BASE_URL')).toBe(origin);
  expect(variable('ANTHROPIC_AUTH_TOKEN')).toBe(secret);
  expect(variable('ANTHROPIC_MODEL')).toBe('claude-haiku-4-5');
  const call = await page.request.post(`${variable('ANTHROPIC_BASE_URL')}/v1/messages`, {
    headers: { authorization: `Bearer ${variable('ANTHROPIC_AUTH_TOKEN')}`, 'anthropic-version': '2023-06-01' },
    data: { model: variable('ANTHROPIC_MODEL'), max_tokens: 32000, messages: [{ role: 'user', content: 'hi' }] },
  });
  expect(call.status()).toBe(200);
  await expect(page.getByTestId('setup-python')).toContainText(`api_key="${secret}"`);
  await expect(page.getByTestId('setup-typescript')).toContainText(`apiKey: "${secret}"`);

  page.once('dialog', (dialog) => dialog.accept());
  await row.getByRole('button', { name: 'Revoke my laptop' }).click();
  await expect(row).toHaveCount(0);
  const after = await page.request.get('/v1/models', { headers: { 'x-api-key': secret } });
  expect(after.status()).toBe(401);

  // After a reload the token is gone from the page for good.
  await gotoHydrated(page, '/settings');
  await expect(page.getByTestId('new-token')).toHaveCount(0);
});

test('the admin pages fit a phone: wide tables scroll inside their card', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await logIn(page, ADMIN.email, ADMIN.password);
  for (const path of ['/admin', '/admin/plans', '/admin/audit', '/admin/users/1']) {
    await gotoHydrated(page, path);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${path} is wider than the phone`).toBeLessThanOrEqual(0);
  }
});
