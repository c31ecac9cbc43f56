'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const store = require('../src/store');
const { memoryStorage } = require('./harness');

const ID = { uri: 'sip:guest-1@guest.invalid', token: 't', ws: 'ws://127.0.0.1:5066', bot: 'sip:helpdesk@127.0.0.1', name: 'X', expires: '' };

test('identity, messages and open state survive a reload', () => {
  const s = memoryStorage();
  store.saveIdentity(s, 'p:', ID);
  store.saveOpen(s, 'p:', true);
  store.saveMessages(s, 'p:', [
    { id: '1', dir: 'in', text: 'Hello <b>', ts: 1 },
    { id: '2', dir: 'out', text: 'hi', ts: 2, state: 'sent', retried503: true },
    { id: '3', dir: 'out', text: 'typed offline', ts: 3, state: 'queued' },
    { id: '4', dir: 'out', text: 'in flight', ts: 4, state: 'sending' },
    { id: '5', dir: 'out', text: 'failed', ts: 5, state: 'failed' }
  ]);
  const got = store.load(s, 'p:');
  assert.deepEqual(got.identity, ID);
  assert.equal(got.open, true);
  assert.deepEqual(got.messages.map((m) => [m.id, m.text, m.state]), [
    ['1', 'Hello <b>', undefined],
    ['2', 'hi', 'sent'],
    ['3', 'typed offline', 'queued'],
    ['4', 'in flight', 'failed'], // fate unknown: offered for retry, not resent
    ['5', 'failed', 'failed']
  ]);
  assert.equal(got.messages[1].retried503, undefined, 'transient flags are not stored');
});

test('another prefix (another bot) sees nothing', () => {
  const s = memoryStorage();
  store.saveIdentity(s, 'a:', ID);
  assert.equal(store.load(s, 'b:').identity, null);
});

test('keeps the last MAX_MESSAGES', () => {
  const s = memoryStorage();
  const many = [];
  for (let i = 0; i < store.MAX_MESSAGES + 10; i++) many.push({ id: String(i), dir: 'in', text: 't' + i, ts: i });
  store.saveMessages(s, 'p:', many);
  const got = store.load(s, 'p:').messages;
  assert.equal(got.length, store.MAX_MESSAGES);
  assert.equal(got[0].text, 't10');
});

test('garbage in storage is dropped, not trusted', () => {
  const s = memoryStorage();
  s.setItem('p:identity', JSON.stringify({ uri: 'sip:x@y', token: 5 }));
  s.setItem('p:messages', JSON.stringify([{ id: 1 }, { id: 'a', dir: 'sys', text: 'x', ts: 1 }, { id: 'b', dir: 'in', text: 'ok', ts: 2 }, null]));
  s.setItem('p:open', '{not json');
  const got = store.load(s, 'p:');
  assert.equal(got.identity, null);
  assert.deepEqual(got.messages.map((m) => m.id), ['b']);
  assert.equal(got.open, false);
});

test('a storage that throws (privacy mode) does not break the widget', () => {
  const bad = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('quota'); } };
  assert.deepEqual(store.load(bad, 'p:'), { identity: null, messages: [], open: false });
  assert.equal(store.saveMessages(bad, 'p:', []), false);
  assert.deepEqual(store.load(null, 'p:'), { identity: null, messages: [], open: false });
});
