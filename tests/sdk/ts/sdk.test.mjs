// The official Anthropic TypeScript SDK, unmodified, against keyward's /v1
// gateway. Run by tests/api/sdk.rs (`node --test`), which starts keyward and
// the mock upstream and passes the address and personal tokens in the
// environment: KEYWARD_BASE_URL, KEYWARD_TOKEN (a user on their own key) and
// KEYWARD_FREE_TOKEN (a user on a free plan allowing one request a day).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

const BASE_URL = process.env.KEYWARD_BASE_URL;
const TOKEN = process.env.KEYWARD_TOKEN;
const FREE_TOKEN = process.env.KEYWARD_FREE_TOKEN;
const MODEL = 'claude-sonnet-4-6';

// No retries: each test sees keyward's first answer.
const client = (apiKey = TOKEN) => new Anthropic({ baseURL: BASE_URL, apiKey, maxRetries: 0 });
const ask = (text) => [{ role: 'user', content: text }];

test('messages.create', async () => {
  const message = await client().messages.create({ model: MODEL, max_tokens: 200, messages: ask('Hello from the SDK') });
  assert.equal(message.type, 'message');
  assert.equal(message.content[0].type, 'text');
  assert.ok(message.content[0].text);
  assert.ok(message.usage.input_tokens > 0);
  assert.ok(message.usage.output_tokens > 0);
  assert.ok(message._request_id, 'the upstream request-id passes through');
});

test('messages.stream', async () => {
  const stream = client().messages.stream({ model: MODEL, max_tokens: 200, messages: ask('Stream to me') });
  const pieces = [];
  stream.on('text', (text) => pieces.push(text));
  const final = await stream.finalMessage();
  assert.ok(pieces.length > 1, 'text arrives in several deltas');
  assert.equal(pieces.join(''), final.content[0].text);
  assert.ok(final.usage.output_tokens > 0);
  assert.equal(final.stop_reason, 'end_turn');
});

test('a tool use round trip', async () => {
  const tools = [
    {
      name: 'search_docs',
      description: 'Search the documentation',
      input_schema: { type: 'object', properties: { query: { type: 'string' } } },
    },
  ];
  const sdk = client();
  const first = await sdk.messages.create({ model: MODEL, max_tokens: 200, tools, messages: ask('Find keyward docs') });
  assert.equal(first.stop_reason, 'tool_use');
  const call = first.content.find((block) => block.type === 'tool_use');
  assert.equal(call.name, 'search_docs');
  const second = await sdk.messages.create({
    model: MODEL,
    max_tokens: 200,
    tools,
    messages: [
      ...ask('Find keyward docs'),
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'three pages found' }] },
    ],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.match(second.content[0].text, /three pages found/);
});

test('countTokens and models.list', async () => {
  const counted = await client().messages.countTokens({ model: MODEL, messages: ask('How many tokens is this?') });
  assert.ok(counted.input_tokens > 0);
  const ids = [];
  for await (const model of client().models.list()) ids.push(model.id);
  assert.ok(ids.includes(MODEL), ids.join(', '));
});

test('a bad token is an AuthenticationError', async () => {
  await assert.rejects(
    client(`kw_${'x'.repeat(32)}`).messages.create({ model: MODEL, max_tokens: 10, messages: ask('hi') }),
    (err) => err instanceof Anthropic.AuthenticationError && err.status === 401,
  );
});

test('over the limit is a RateLimitError with retry-after', async () => {
  const free = client(FREE_TOKEN);
  await free.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: ask('my one free request') });
  await assert.rejects(
    free.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: ask('one too many') }),
    (err) =>
      err instanceof Anthropic.RateLimitError &&
      Number(err.headers.get('retry-after')) > 0 &&
      err.message.includes('00:00 UTC'),
  );
});

test('a model outside the plan is a PermissionDeniedError naming the variables to set', async () => {
  await assert.rejects(
    client(FREE_TOKEN).messages.create({ model: 'claude-opus-4-7', max_tokens: 10, messages: ask('hi') }),
    (err) => err instanceof Anthropic.PermissionDeniedError && err.message.includes('ANTHROPIC_MODEL'),
  );
});

test('an overloaded upstream is an OverloadedError', async () => {
  await assert.rejects(
    client().messages.create({ model: MODEL, max_tokens: 10, messages: ask('please mock:529') }),
    (err) => err instanceof Anthropic.OverloadedError && err.status === 529,
  );
});
