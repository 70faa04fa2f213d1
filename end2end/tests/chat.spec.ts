import { expect, test, type Page } from '@playwright/test';
import { MOCK_KEYS } from '../playwright.config';
import { gotoHydrated, signUp, uniqueEmail } from './helpers';

async function send(page: Page, text: string) {
  await page.getByLabel('Message').fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

const replies = (page: Page) => page.locator('article.msg-assistant');

test('a reply streams in, survives a reload, and conversations can be switched and deleted', async ({ page }) => {
  await signUp(page, uniqueEmail('chat'));
  await gotoHydrated(page, '/chat');
  await expect(page.getByText('What can I help with?')).toBeVisible();

  await send(page, 'First topic, slowly please mock:slow');
  // While streaming: Stop is offered, the box is disabled, and text is already there.
  await expect(page.getByRole('button', { name: 'Stop' })).toBeVisible();
  await expect(page.getByLabel('Message')).toBeDisabled();
  const streaming = page.locator('article.msg-assistant[data-status="streaming"] .markdown');
  await expect(streaming).not.toBeEmpty();
  const early = (await streaming.textContent()) ?? '';
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete', { timeout: 20_000 });
  const full = (await replies(page).last().locator('.markdown').textContent()) ?? '';
  expect(full.length).toBeGreaterThan(early.length);
  // Rendered in the browser as it streamed (the renderer is a chunk of its own).
  await expect(replies(page).last().locator('.markdown pre code span[class^="tok-"]').first()).toBeVisible();
  await expect(replies(page).last()).toHaveAttribute('data-paid-by', 'platform');
  await expect(replies(page).last().getByText('free tier')).toBeVisible();
  await expect(page).toHaveURL(/\/chat\/\d+$/);
  const firstUrl = page.url();

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('article.msg-user .user-text')).toHaveText(['First topic, slowly please mock:slow']);
  await expect(replies(page)).toHaveCount(1);
  // Hydration keeps the server's rendering of a stored reply, code
  // highlighting included (the browser does not render it again).
  await expect(replies(page).last().locator('.markdown')).toHaveText(full);
  await expect(replies(page).last().locator('.markdown pre code span[class^="tok-"]').first()).toBeVisible();

  await page.getByRole('button', { name: 'New chat' }).click();
  await expect(page.getByText('What can I help with?')).toBeVisible();
  await send(page, 'Second topic');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  const sidebar = page.getByRole('complementary', { name: 'Conversations' });
  await expect(sidebar.getByRole('link')).toHaveCount(2);
  // Newest first.
  await expect(sidebar.getByRole('link').first()).toHaveText('Second topic');

  await sidebar.getByRole('link', { name: /First topic/ }).click();
  await expect(page).toHaveURL(firstUrl);
  await expect(page.locator('article.msg-user .user-text')).toHaveText(['First topic, slowly please mock:slow']);
  // Opened in the tab, not loaded with the page: rendered here.
  await expect(replies(page).last().locator('.markdown')).toHaveText(full);

  page.once('dialog', (dialog) => dialog.accept());
  await sidebar.getByRole('listitem').filter({ hasText: 'Second topic' }).getByRole('button', { name: 'Delete conversation' }).click();
  await expect(sidebar.getByRole('link')).toHaveCount(1);
  await page.reload();
  await expect(page.getByRole('complementary', { name: 'Conversations' }).getByRole('link')).toHaveCount(1);
});

test('when the markdown renderer cannot be fetched, replies show as plain text and the chat goes on', async ({ page }) => {
  await page.route(/split_keyward_markdown_renderer[^/]*\.wasm/, (route) => route.abort());
  await signUp(page, uniqueEmail('no-renderer'));
  await gotoHydrated(page, '/chat');
  await send(page, 'Show me some code');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  // The markdown as written (every mock reply has a code block), not nothing.
  await expect(replies(page).last().locator('.markdown')).toContainText('```');
  await expect(replies(page).last().locator('.markdown pre')).toHaveCount(0);
  await send(page, 'And another');
  await expect(replies(page)).toHaveCount(2);
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  await expect(replies(page).last().locator('.markdown')).toContainText('```');
});

test('Stop before the server answers puts the message back, without an error', async ({ page }) => {
  await signUp(page, uniqueEmail('early-stop'));
  await gotoHydrated(page, '/chat');
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/chat/send', async (route) => {
    await held;
    await route.continue().catch(() => {});
  });
  await send(page, 'Never mind');
  await page.getByRole('button', { name: 'Stop' }).click();
  await expect(page.getByRole('button', { name: 'Send' })).toBeVisible();
  await expect(page.getByLabel('Message')).toHaveValue('Never mind');
  await expect(page.getByRole('alert')).toHaveCount(0);
  await expect(replies(page)).toHaveCount(0);
  release();
});

test('a message the server kept but the browser never heard back about is not stored twice when sent again', async ({ page }) => {
  await signUp(page, uniqueEmail('lost-answer'));
  await gotoHydrated(page, '/chat');
  // The first send reaches the server (which stores it and answers), and
  // the answer is lost on the way back.
  await page.route(
    '**/chat/send',
    async (route) => {
      await route.fetch();
      await route.abort('connectionreset');
    },
    { times: 1 },
  );
  await send(page, 'Only once, please');
  await expect(page.getByRole('alert')).toBeVisible();
  await expect(page.getByLabel('Message')).toHaveValue('Only once, please');
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(replies(page)).toHaveCount(1);
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');

  // Stored once: one conversation, one message of the user's.
  await gotoHydrated(page, new URL(page.url()).pathname);
  await expect(page.locator('article.msg-user .user-text')).toHaveText(['Only once, please']);
  await expect(replies(page)).toHaveCount(1);
  await expect(page.locator('.conversation-list li')).toHaveCount(1);
});

test('Stop keeps the partial reply', async ({ page }) => {
  await signUp(page, uniqueEmail('stop'));
  await gotoHydrated(page, '/chat');
  await send(page, 'A long story mock:slow');
  const reply = page.locator('article.msg-assistant[data-status="streaming"] .markdown');
  await expect(reply).not.toBeEmpty();
  await page.getByRole('button', { name: 'Stop' }).click();
  await expect(replies(page).last()).toHaveAttribute('data-status', 'stopped');
  await expect(page.getByLabel('Message')).toBeEnabled();
  const partial = (await replies(page).last().locator('.markdown').textContent()) ?? '';
  expect(partial.length).toBeGreaterThan(0);

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'stopped');
  expect(((await replies(page).last().locator('.markdown').textContent()) ?? '').length).toBeGreaterThan(0);
});

test('Enter sends, Shift+Enter adds a line, and a refused message stays in the box', async ({ page }) => {
  await signUp(page, uniqueEmail('keys'));
  await gotoHydrated(page, '/chat');
  const box = page.getByLabel('Message');
  await box.fill('line one');
  await box.press('Shift+Enter');
  await box.pressSequentially('line two');
  await expect(box).toHaveValue('line one\nline two');
  await box.press('Enter');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  await expect(page.locator('article.msg-user').last()).toContainText('line two');

  const tooLong = 'x'.repeat(100_001);
  await box.fill(tooLong);
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(page.getByRole('alert')).toContainText('at most 100000 characters');
  await expect(box).toHaveValue(tooLong);
});

test('an overloaded upstream shows a clear error and the chat goes on', async ({ page }) => {
  await signUp(page, uniqueEmail('overload'));
  await gotoHydrated(page, '/chat');
  await send(page, 'hello mock:529');
  await expect(page.getByRole('alert')).toContainText('overloaded');
  await send(page, 'hello again');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
});

test('a reply that read the conversation from the prompt cache says what that saved', async ({ page }) => {
  await signUp(page, uniqueEmail('cache'));
  await gotoHydrated(page, '/chat');
  // Long enough for Haiku's minimum cacheable prompt.
  await send(page, `A long document to discuss: ${'lorem ipsum '.repeat(1_600)}`);
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  await expect(replies(page).last().locator('.badge-free')).not.toHaveAttribute('title', /cached:/);
  await send(page, 'And a question about it?');
  await expect(replies(page)).toHaveCount(2);
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  const savings = /cached: \d+ tokens, saved \$0\.\d{4}/;
  await expect(replies(page).last().locator('.badge-free')).toHaveAttribute('title', savings);

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(replies(page).last().locator('.badge-free')).toHaveAttribute('title', savings);

  await gotoHydrated(page, '/settings');
  await expect(page.getByTestId('caching-savings')).toContainText(/Prompt caching saved you \$0\.\d{4} today/);
});

test('an earlier message can be edited and resent, replacing what followed it', async ({ page }) => {
  await signUp(page, uniqueEmail('edit'));
  await gotoHydrated(page, '/chat');
  await send(page, 'mock:echo first answer');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  await send(page, 'mock:echo second answer');
  await expect(replies(page)).toHaveCount(2);
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  const sent = page.locator('article.msg-user .user-text');

  // Escape leaves the message as it was.
  const firstEdit = page.locator('article.msg-user').first().getByRole('button', { name: 'Edit' });
  await expect(firstEdit).toHaveAccessibleName('Edit “mock:echo first answer”');
  await firstEdit.click();
  const box = page.getByLabel('Edit message');
  await expect(box).toHaveValue('mock:echo first answer');
  await box.fill('something else');
  await box.press('Escape');
  await expect(sent).toHaveText(['mock:echo first answer', 'mock:echo second answer']);

  await page.locator('article.msg-user').first().getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('Edit message').fill('mock:echo edited answer');
  await page.getByRole('button', { name: 'Resend' }).click();
  await expect(sent).toHaveText(['mock:echo edited answer']);
  await expect(replies(page)).toHaveCount(1);
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  await expect(replies(page).last()).toContainText('edited answer');

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(sent).toHaveText(['mock:echo edited answer']);
  await expect(replies(page)).toHaveCount(1);
});

test('a default system prompt from Settings, and a conversation of its own, shown at the top', async ({ page }) => {
  await signUp(page, uniqueEmail('system'));
  await gotoHydrated(page, '/settings');
  await page.getByLabel('Default system prompt').fill('Answer like a pirate.');
  await page.getByRole('button', { name: 'Save system prompt' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved' })).toBeVisible();

  await gotoHydrated(page, '/chat');
  await send(page, 'hello');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');
  const box = page.locator('details.system-prompt');
  await expect(box.locator('summary')).toHaveText('System prompt (the default from Settings)');
  await box.locator('summary').click();
  await expect(box).toContainText('Answer like a pirate.');

  await box.getByRole('button', { name: 'Edit system prompt' }).click();
  await page.getByLabel('System prompt for this conversation').fill('Answer in haiku.');
  await page.getByRole('button', { name: 'Save for this conversation' }).click();
  await expect(page.locator('details.system-prompt summary')).toHaveText("System prompt (this conversation's own)");
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.locator('details.system-prompt summary').click();
  await expect(page.locator('details.system-prompt')).toContainText('Answer in haiku.');
});

test('thinking first: refused with the reason on the free plan, shown collapsed on your own key', async ({ page }) => {
  await signUp(page, uniqueEmail('think'));
  await gotoHydrated(page, '/chat');
  await page.getByLabel('Think first').check();
  await expect(page.getByLabel('Thinking budget')).toBeVisible();
  await send(page, 'think about it');
  await expect(page.getByRole('alert')).toContainText('tokens your plan allows');
  await expect(page.getByLabel('Message')).toHaveValue('think about it');

  await gotoHydrated(page, '/settings');
  await page.getByLabel('Anthropic API key').fill(MOCK_KEYS.user);
  await page.getByRole('button', { name: 'Save key' }).click();
  await expect(page.getByTestId('masked-key')).toBeVisible();

  await gotoHydrated(page, '/chat');
  await page.getByLabel('Think first').check();
  await send(page, 'think about it');
  const reply = replies(page).last();
  await expect(reply).toHaveAttribute('data-status', 'complete');
  const thinking = reply.locator('details.thinking');
  await expect(thinking.locator('summary')).toHaveText('Thinking');
  await expect(thinking).not.toHaveAttribute('open', '');
  await thinking.locator('summary').click();
  await expect(thinking).toContainText('Let me think');
  await expect(reply.locator('.markdown')).not.toContainText('Let me think');

  await page.getByLabel('Thinking budget').selectOption({ label: '16K tokens' });
  await send(page, 'think harder');
  await expect(replies(page).last()).toHaveAttribute('data-status', 'complete');

  // The toggle belongs to the conversation: it comes back with it, and a
  // new chat starts without.
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await expect(replies(page).last().locator('details.thinking summary')).toHaveText('Thinking');
  await expect(page.getByLabel('Think first')).toBeChecked();
  await expect(page.getByLabel('Thinking budget')).toHaveValue('16384');
  const conversation = page.url();
  await page.getByRole('button', { name: 'New chat' }).click();
  await expect(page.getByLabel('Think first')).not.toBeChecked();
  await gotoHydrated(page, new URL(conversation).pathname);
  await expect(page.getByLabel('Think first')).toBeChecked();
});
