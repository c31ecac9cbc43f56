'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { resolveBase, parseRetryAfter, renewDelay, checkToken } = require('../src/util');

test('base URL: data-imbot wins, resolved against the page, always ends in /', () => {
  assert.equal(resolveBase('https://bot.example/imbot/', 'https://bot.example/imbot/chat.js', 'https://site.example/'), 'https://bot.example/imbot/');
  assert.equal(resolveBase('https://bot.example/imbot', null, 'https://site.example/'), 'https://bot.example/imbot/');
  assert.equal(resolveBase('/chat/', null, 'https://site.example/a/b'), 'https://site.example/chat/');
});

test('base URL: else the script URL without chat.js, query or fragment', () => {
  assert.equal(resolveBase(null, 'https://bot.example/imbot/chat.js?v=2#x', 'https://site.example/'), 'https://bot.example/imbot/');
  assert.equal(resolveBase('', 'chat.js', 'http://127.0.0.1:8080/imbot/demo'), 'http://127.0.0.1:8080/imbot/');
});

test('Retry-After: seconds with SIP parameters and comments, or an HTTP date', () => {
  assert.equal(parseRetryAfter('30'), 30);
  assert.equal(parseRetryAfter(' 120;duration=3600 (lunch)'), 120);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('2026-12-01T12:00:00Z');
  assert.equal(parseRetryAfter('Tue, 01 Dec 2026 12:00:45 GMT', now), 45);
});

test('token renewal a minute before expiry, never sooner than the floor', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  assert.equal(renewDelay('2026-12-01T12:10:00Z', now), 9 * 60000);
  assert.equal(renewDelay('2026-12-01T12:00:30Z', now), 5000);
  assert.equal(renewDelay('2026-12-01T13:00:00+01:00', now), 5000);
  assert.equal(renewDelay('not a date', now), null);
});

test('token answer: required fields checked, name defaulted', () => {
  const ok = { uri: 'sip:guest-a@guest.invalid', token: 'x', ws: 'wss://bot.example:5066', bot: 'sip:helpdesk@bot.example', expires: '2026-12-01T12:10:00Z', extra: 1 };
  assert.deepEqual(checkToken(ok), { uri: ok.uri, token: 'x', ws: ok.ws, bot: ok.bot, name: 'Helpdesk', expires: ok.expires });
  assert.equal(checkToken({ ...ok, token: '' }), null);
  assert.equal(checkToken({ ...ok, ws: 'http://bot.example/' }), null);
  assert.equal(checkToken({ ...ok, bot: 'javascript:alert(1)' }), null);
  assert.equal(checkToken(null), null);
});
