// Unit tests, run in Node without Switchboard: `npm test`. The host
// interfaces a plugin imports (`wasi:config/store`, `wasi:logging/logging`)
// are stubbed by test/shim/ (see hooks.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { tools } from '../index.js';

const context = { callId: 'test-call', callType: 'web_call', toolCallId: 'test-tool-call', deadlineMs: 9000 };

test('greets by name', () => {
  const answer = tools.call('__NAME__', JSON.stringify({ name: 'Ada' }), context);
  assert.deepEqual(JSON.parse(answer), { message: 'Hello, Ada!' });
});

test('refuses an empty name with an error the LLM can read', () => {
  assert.throws(() => tools.call('__NAME__', JSON.stringify({ name: ' ' }), context), { tag: 'invalid-arguments' });
});

test('lists its tool with a JSON Schema', () => {
  const [tool] = tools.list();
  assert.equal(tool.name, '__NAME__');
  assert.deepEqual(JSON.parse(tool.parametersSchema).required, ['name']);
});
