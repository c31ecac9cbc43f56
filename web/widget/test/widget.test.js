'use strict';
// The built bundle (web/static/chat.js) end to end against a fake page, a fake
// token endpoint and a fake WebSocket that plays the bot: what the widget
// shows, which SIP it sends, and how it copes with errors and drops.
const test = require('node:test');
const assert = require('node:assert/strict');
const { load, settle, response, botMessage, memoryStorage } = require('./harness');
const ic = require('../src/iscomposing');

const GUEST = 'sip:guest-ab12@guest.invalid';
const BOT = 'sip:helpdesk@127.0.0.1';
const WS = 'ws://127.0.0.1:5066';

function tokenAnswer(over) {
  return Object.assign({
    uri: GUEST,
    token: 'tok-1',
    ws: WS,
    bot: BOT,
    name: 'Contoso IT Helpdesk',
    expires: new Date(Date.now() + 10 * 60000).toISOString()
  }, over || {});
}

// Opens the widget and walks it to "Connected".
async function connected(opts) {
  const w = load(opts);
  w.window.ImbotChat.open();
  await settle();
  assert.equal(w.fetches.length, 1);
  w.fetches[0].respond(200, tokenAnswer());
  await settle();
  w.ws().accept();
  assert.equal(w.q('imbot-status').textContent, 'Connected');
  return w;
}

const lastReq = (w, method) => w.ws().requests(method).slice(-1)[0];
const texts = (w) => w.qa('imbot-text').map((e) => e.textContent);

test('one global with open, close, send; nothing else leaks', () => {
  const w = load();
  const api = w.window.ImbotChat;
  assert.equal(typeof api.open, 'function');
  assert.equal(typeof api.close, 'function');
  assert.equal(typeof api.send, 'function');
  assert.equal(api.version, require('../package.json').version);
  assert.ok(Object.isFrozen(api));
  const known = new Set(['document', 'navigator', 'location', 'sessionStorage', 'fetch', 'WebSocket',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL', 'TextEncoder', 'TextDecoder',
    'console', 'addEventListener', 'removeEventListener', 'window', 'self']);
  assert.deepEqual(Object.keys(w.window).filter((k) => !known.has(k)), ['ImbotChat']);
  // Nothing is fetched and no socket opened until the visitor opens the chat.
  assert.equal(w.fetches.length, 0);
  assert.equal(w.sockets.length, 0);
});

test('stylesheet by <link> from the base URL; the widget shows once it loaded', () => {
  const w = load({ scriptSrc: 'https://bot.example/imbot/chat.js?v=1', cssPending: true });
  const link = w.document.head.find((e) => e.tagName === 'LINK');
  assert.equal(link.getAttribute('rel'), 'stylesheet');
  assert.equal(link.getAttribute('href'), 'https://bot.example/imbot/chat.css');
  assert.equal(w.root().shown, false);
  link.dispatch('load');
  assert.equal(w.root().shown, true);
  // data-imbot overrides the base
  const w2 = load({ dataImbot: 'https://other.example/chat/' });
  assert.equal(w2.document.head.children[0].getAttribute('href'), 'https://other.example/chat/chat.css');
});

test('accessible structure: launcher, dialog, log, labelled field and button; Escape closes', () => {
  const w = load();
  const launcher = w.q('imbot-launcher');
  const panel = w.q('imbot-panel');
  assert.equal(launcher.tagName, 'BUTTON');
  assert.equal(launcher.getAttribute('type'), 'button');
  assert.match(launcher.textContent, /^Chat with us/);
  assert.equal(launcher.getAttribute('aria-expanded'), 'false');
  assert.equal(launcher.getAttribute('aria-controls'), panel.id);
  assert.equal(panel.getAttribute('role'), 'dialog');
  assert.match(panel.getAttribute('aria-label'), /^Chat with /);
  assert.equal(panel.shown, false);
  const log = w.q('imbot-log');
  assert.equal(log.getAttribute('role'), 'log');
  assert.equal(log.getAttribute('aria-live'), 'polite');
  assert.equal(log.getAttribute('aria-relevant'), 'additions');
  const input = w.q('imbot-input');
  assert.equal(input.tagName, 'TEXTAREA');
  const label = w.document.body.find((e) => e.tagName === 'LABEL');
  assert.equal(label.getAttribute('for'), input.id);
  assert.equal(label.textContent, 'Your message');
  assert.equal(w.q('imbot-send').textContent, 'Send');
  assert.equal(w.q('imbot-close').getAttribute('aria-label'), 'Close chat');
  assert.equal(w.q('imbot-typing').getAttribute('aria-live'), 'polite');

  launcher.click();
  assert.equal(launcher.getAttribute('aria-expanded'), 'true');
  assert.equal(panel.shown, true);
  assert.equal(w.document.activeElement, input);
  const ev = panel.dispatch('keydown', { key: 'Escape' });
  assert.ok(ev.defaultPrevented);
  assert.equal(panel.shown, false);
  assert.equal(launcher.getAttribute('aria-expanded'), 'false');
  assert.equal(w.document.activeElement, launcher);
});

test('token, WebSocket, UA identity and the hello OPTIONS', async () => {
  const w = load({ dataName: 'Ann' });
  w.window.ImbotChat.open();
  assert.equal(w.q('imbot-status').textContent, 'Connecting\u2026');
  await settle();
  const f = w.fetches[0];
  assert.equal(f.url, 'http://127.0.0.1:8080/imbot/token');
  assert.equal(f.init.method, 'POST');
  assert.deepEqual(f.body, {});
  f.respond(200, tokenAnswer());
  await settle();
  assert.equal(w.sockets.length, 1);
  assert.equal(w.ws().url, WS);
  assert.equal(w.ws().protocols, 'sip');
  assert.equal(w.q('imbot-title').textContent, 'Contoso IT Helpdesk');
  assert.equal(w.q('imbot-panel').getAttribute('aria-label'), 'Chat with Contoso IT Helpdesk');
  w.ws().accept();
  assert.equal(w.q('imbot-status').textContent, 'Connected');
  const hello = lastReq(w, 'OPTIONS');
  assert.equal(hello.first, 'OPTIONS ' + BOT + ' SIP/2.0');
  assert.equal(hello.h('X-Imbot-Guest'), 'tok-1');
  assert.equal(hello.h('From').split(';')[0], '"Ann" <' + GUEST + '>');
  assert.equal(w.ws().requests('REGISTER').length, 0, 'register: false');
  assert.deepEqual(JSON.parse(w.storage.getItem('imbot:http://127.0.0.1:8080/imbot/:identity')), tokenAnswer({ expires: JSON.parse(w.storage.getItem('imbot:http://127.0.0.1:8080/imbot/:identity')).expires }));
});

test('a text message: headers, body, sending -> sent', async () => {
  const w = await connected();
  const input = w.q('imbot-input');
  input.value = 'My printer is on fire <b>really</b> \u00e9\u00e8';
  const ev = input.dispatch('keydown', { key: 'Enter', shiftKey: false });
  assert.ok(ev.defaultPrevented);
  assert.equal(input.value, '');
  const m = lastReq(w, 'MESSAGE');
  assert.equal(m.first, 'MESSAGE ' + BOT + ' SIP/2.0');
  assert.equal(m.h('Content-Type'), 'text/plain;charset=UTF-8');
  assert.equal(m.h('X-Imbot-Guest'), 'tok-1');
  assert.equal(m.h('Accept'), 'text/plain, application/im-iscomposing+xml');
  assert.equal(m.body, 'My printer is on fire <b>really</b> \u00e9\u00e8');
  assert.equal(Number(m.h('Content-Length')), Buffer.byteLength(m.body));
  const row = w.q('imbot-msg-out');
  assert.equal(row.getAttribute('data-state'), 'sending');
  assert.match(row.byClass('imbot-meta').textContent, /Sending/);
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 200, 'OK'));
  assert.equal(row.getAttribute('data-state'), 'sent');
  assert.match(row.byClass('imbot-meta').textContent, /Sent/);
  // Shift+Enter is a newline, not a send.
  input.value = 'line one';
  const ev2 = input.dispatch('keydown', { key: 'Enter', shiftKey: true });
  assert.equal(ev2.defaultPrevented, false);
  // So is Enter while an IME composes.
  input.dispatch('keydown', { key: 'Enter', isComposing: true });
  assert.equal(w.ws().requests('MESSAGE').length, 1);
  // The Send button sends.
  w.q('imbot-send').click();
  assert.equal(lastReq(w, 'MESSAGE').body, 'line one');
  // Blank text is not sent.
  assert.equal(w.window.ImbotChat.send('  \n '), false);
  assert.equal(w.ws().requests('MESSAGE').length, 2);
});

test('incoming text is shown as text, never as HTML', async () => {
  const w = await connected();
  const evil = '<img src=x onerror=alert(1)> Frank is now with you.';
  w.ws().deliver(botMessage(GUEST, 'text/plain;charset=UTF-8', evil));
  const ok = w.ws().sent.slice(-1)[0];
  assert.match(ok, /^SIP\/2\.0 200 OK/);
  const el = w.q('imbot-msg-in').byClass('imbot-text');
  assert.equal(el.textContent, evil);
  assert.equal(el.children.length, 0, 'no element was made from the text');
  w.ws().deliver(botMessage(GUEST, 'text/plain', 'Frank has left the conversation\u2026'));
  assert.deepEqual(texts(w), [evil, 'Frank has left the conversation\u2026']);
  // Other content types are ignored.
  w.ws().deliver(botMessage(GUEST, 'text/html', '<p>hi</p>'));
  w.ws().deliver(botMessage(GUEST, 'application/json', '{}'));
  assert.equal(texts(w).length, 2);
});

test('unread badge while closed', async () => {
  const w = await connected();
  w.window.ImbotChat.close();
  w.ws().deliver(botMessage(GUEST, 'text/plain', 'one'));
  w.ws().deliver(botMessage(GUEST, 'text/plain', 'two'));
  assert.equal(w.q('imbot-badge').shown, true);
  assert.equal(w.q('imbot-badge').textContent, '2');
  assert.match(w.q('imbot-launcher').textContent, /2 new messages/);
  w.window.ImbotChat.open();
  assert.equal(w.q('imbot-badge').shown, false);
});

test('the visitor typing: active with refresh 60, idle after 5 s, none after sending', async () => {
  const w = await connected();
  const input = w.q('imbot-input');
  const composing = () => w.ws().requests('MESSAGE').filter((m) => m.h('Content-Type') === ic.CONTENT_TYPE);
  input.value = 'He';
  input.dispatch('input');
  assert.equal(composing().length, 1);
  const a = composing()[0];
  assert.equal(a.h('X-Imbot-Guest'), 'tok-1');
  assert.equal(a.h('Accept'), 'text/plain, application/im-iscomposing+xml');
  assert.deepEqual(ic.parse(a.body), { state: 'active', refresh: 60, contentType: 'text/plain', lastActive: null });
  input.value = 'Hel';
  input.dispatch('input');
  assert.equal(composing().length, 1, 'no second active within 50 s');
  w.clock.advance(5000);
  assert.equal(composing().length, 2);
  assert.equal(ic.parse(composing()[1].body).state, 'idle');
  // Typing again, then sending: the text ends composing, no idle follows.
  input.value = 'Hello';
  input.dispatch('input');
  assert.equal(ic.parse(composing()[2].body).state, 'active');
  input.dispatch('keydown', { key: 'Enter' });
  w.clock.advance(6000);
  assert.equal(composing().length, 3);
  // Clearing the field says idle at once.
  input.value = 'x';
  input.dispatch('input');
  input.value = '';
  input.dispatch('input');
  assert.deepEqual(composing().slice(3).map((m) => ic.parse(m.body).state), ['active', 'idle']);
});

test('the bot typing: dots on active, gone on text, idle or expiry', async () => {
  const w = await connected();
  const typing = w.q('imbot-typing');
  assert.equal(typing.textContent, '');
  w.ws().deliver(botMessage(GUEST, ic.CONTENT_TYPE, ic.build('active', { refresh: 60 })));
  assert.ok(typing.classList.contains('imbot-typing-on'));
  assert.match(typing.textContent, /^Contoso IT Helpdesk is typing/);
  assert.equal(typing.byClass('imbot-dots').getAttribute('aria-hidden'), 'true');
  w.ws().deliver(botMessage(GUEST, 'text/plain', 'Have you tried turning it off and on again?'));
  assert.equal(typing.textContent, '');
  w.ws().deliver(botMessage(GUEST, ic.CONTENT_TYPE, ic.build('active', { refresh: 60 })));
  w.ws().deliver(botMessage(GUEST, ic.CONTENT_TYPE, ic.build('idle')));
  assert.equal(typing.textContent, '');
  // Without <refresh>: 120 s.
  w.ws().deliver(botMessage(GUEST, ic.CONTENT_TYPE,
    '<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>'));
  w.clock.advance(119000);
  assert.notEqual(typing.textContent, '');
  w.clock.advance(1000);
  assert.equal(typing.textContent, '');
});

test('failed delivery shows a retry button that sends again', async () => {
  const w = await connected();
  w.window.ImbotChat.send('help');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 488, 'Not Acceptable Here'));
  const row = w.q('imbot-msg-out');
  assert.equal(row.getAttribute('data-state'), 'failed');
  assert.match(row.byClass('imbot-meta').textContent, /Not sent/);
  assert.match(row.byClass('imbot-failure').textContent, /^Message not sent\. Retry$/);
  const retry = row.byClass('imbot-retry');
  assert.equal(retry.textContent, 'Retry');
  retry.click();
  assert.equal(w.document.activeElement, w.q('imbot-input'), 'focus does not vanish with the button');
  assert.equal(row.getAttribute('data-state'), 'sending');
  assert.equal(row.byClass('imbot-failure'), null);
  assert.equal(w.ws().requests('MESSAGE').length, 2);
  assert.equal(lastReq(w, 'MESSAGE').body, 'help');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 202, 'Accepted'));
  assert.equal(row.getAttribute('data-state'), 'sent');
  assert.equal(row.byClass('imbot-retry'), null);
});

test('503 with Retry-After: one retry after that many seconds, then failed', async () => {
  const w = await connected();
  w.window.ImbotChat.send('anyone?');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 503, 'Service Unavailable', ['Retry-After: 3']));
  const row = w.q('imbot-msg-out');
  assert.equal(row.getAttribute('data-state'), 'sending');
  w.clock.advance(2999);
  assert.equal(w.ws().requests('MESSAGE').length, 1);
  w.clock.advance(1);
  assert.equal(w.ws().requests('MESSAGE').length, 2);
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 503, 'Service Unavailable', ['Retry-After: 3']));
  assert.equal(row.getAttribute('data-state'), 'failed');
  w.clock.advance(10000);
  assert.equal(w.ws().requests('MESSAGE').length, 2, 'only one automatic retry');
});

test('a network drop: Reconnecting, what was typed offline is queued and sent on reconnect', async () => {
  const w = await connected();
  w.window.ImbotChat.send('before');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 200, 'OK'));
  const first = w.ws();
  first.drop();
  assert.equal(w.q('imbot-status').textContent, 'Reconnecting\u2026');
  w.window.ImbotChat.send('while offline 1');
  w.window.ImbotChat.send('while offline 2');
  assert.deepEqual(w.state().messages.map((m) => m.state), ['sent', 'queued', 'queued']);
  assert.match(w.qa('imbot-msg-out')[1].byClass('imbot-meta').textContent, /Waiting for connection/);
  assert.equal(first.requests('MESSAGE').length, 1);
  // JsSIP's connection recovery: a new socket within connection_recovery_max_interval (10 s).
  w.clock.advance(11000);
  assert.equal(w.sockets.length, 2);
  assert.equal(w.q('imbot-status').textContent, 'Reconnecting\u2026');
  w.ws().accept();
  assert.equal(w.q('imbot-status').textContent, 'Connected');
  const sent = w.ws().requests();
  assert.deepEqual(sent.map((m) => m.method), ['OPTIONS', 'MESSAGE', 'MESSAGE'], 'hello first, then the queue in order');
  assert.deepEqual(sent.slice(1).map((m) => m.body), ['while offline 1', 'while offline 2']);
  for (const f of w.ws().sent.slice(1)) w.ws().deliver(response(f, 200, 'OK'));
  assert.deepEqual(w.state().messages.map((m) => m.state), ['sent', 'sent', 'sent']);
});

test('a message in flight when the socket drops is sent again after reconnect, once', async () => {
  const w = await connected();
  w.window.ImbotChat.send('in flight');
  w.window.ImbotChat.send('waiting out a 503');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 503, 'Service Unavailable', ['Retry-After: 5']));
  w.ws().drop();
  assert.deepEqual(w.state().messages.map((m) => m.state), ['queued', 'queued']);
  w.clock.advance(11000);
  w.ws().accept();
  const again = w.ws().requests('MESSAGE');
  assert.deepEqual(again.map((m) => m.body), ['in flight', 'waiting out a 503']);
  for (const f of w.ws().sent.filter((x) => x.startsWith('MESSAGE'))) w.ws().deliver(response(f, 200, 'OK'));
  assert.deepEqual(w.state().messages.map((m) => m.state), ['sent', 'sent']);
  // The first attempts' transaction timers (Timer F, 32 s) and the 503 timer
  // run out later: they neither fail the message nor send it a third time.
  w.clock.advance(60000);
  assert.deepEqual(w.state().messages.map((m) => m.state), ['sent', 'sent']);
  assert.equal(w.sockets.flatMap((s) => s.requests('MESSAGE')).length, 4);
});

test('a reload keeps the conversation and the identity; queued text goes out', async () => {
  const storage = memoryStorage();
  const w = await connected({ storage });
  w.window.ImbotChat.send('first');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 200, 'OK'));
  w.ws().deliver(botMessage(GUEST, 'text/plain', 'Hello, how can I help?'));
  w.ws().drop();
  w.window.ImbotChat.send('typed offline');

  const r = load({ storage }); // the same tab, reloaded
  assert.deepEqual(texts(r), ['first', 'Hello, how can I help?', 'typed offline']);
  assert.equal(r.q('imbot-panel').shown, true, 'the panel stays open');
  assert.notEqual(r.document.activeElement, r.q('imbot-input'), 'a reload does not grab focus');
  await settle();
  assert.equal(r.fetches.length, 1, 'a conversation under way reconnects at once');
  assert.deepEqual(r.fetches[0].body, { uri: GUEST, token: 'tok-1' });
  r.fetches[0].respond(200, tokenAnswer({ token: 'tok-2' }));
  await settle();
  r.ws().accept();
  const m = lastReq(r, 'MESSAGE');
  assert.equal(m.body, 'typed offline');
  assert.equal(m.h('X-Imbot-Guest'), 'tok-2');
  assert.equal(m.h('From').split(';')[0], '"Guest" <' + GUEST + '>');
});

test('a message in flight at reload comes back failed, with a retry button', async () => {
  const storage = memoryStorage();
  const w = await connected({ storage });
  w.window.ImbotChat.send('unanswered');
  const r = load({ storage });
  assert.equal(r.q('imbot-msg-out').getAttribute('data-state'), 'failed');
  assert.ok(r.q('imbot-retry'));
});

test('429: the visitor is told, and the widget tries again later', async () => {
  const w = load();
  w.window.ImbotChat.open();
  await settle();
  w.fetches[0].respond(429, { error: 'rate' });
  await settle();
  assert.equal(w.q('imbot-status').textContent, 'Too many visitors from your address; try again in a minute.');
  w.clock.advance(59000);
  assert.equal(w.fetches.length, 1);
  w.clock.advance(1000);
  await settle();
  assert.equal(w.fetches.length, 2);
  w.fetches[1].respond(200, tokenAnswer());
  await settle();
  w.ws().accept();
  assert.equal(w.q('imbot-status').textContent, 'Connected');
});

test('the token is renewed a minute before it expires, same identity, same socket', async () => {
  const w = await connected();
  assert.equal(w.fetches.length, 1);
  w.clock.advance(8 * 60000);
  assert.equal(w.fetches.length, 1);
  w.clock.advance(60000 + 1000);
  await settle();
  assert.equal(w.fetches.length, 2);
  assert.deepEqual(w.fetches[1].body, { uri: GUEST, token: 'tok-1' });
  w.fetches[1].respond(200, tokenAnswer({ token: 'tok-2' }));
  await settle();
  assert.equal(w.sockets.length, 1);
  w.window.ImbotChat.send('still me');
  assert.equal(lastReq(w, 'MESSAGE').h('X-Imbot-Guest'), 'tok-2');
});

test('a 403 on a message renews the token and sends again once', async () => {
  const w = await connected();
  w.window.ImbotChat.send('knock knock');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 403, 'Forbidden'));
  assert.equal(w.state().messages[0].state, 'queued');
  await settle();
  assert.equal(w.fetches.length, 2);
  w.fetches[1].respond(200, tokenAnswer({ token: 'tok-3' }));
  await settle();
  const m = lastReq(w, 'MESSAGE');
  assert.equal(m.body, 'knock knock');
  assert.equal(m.h('X-Imbot-Guest'), 'tok-3');
  w.ws().deliver(response(w.ws().sent.slice(-1)[0], 403, 'Forbidden'));
  assert.equal(w.state().messages[0].state, 'failed');
});

test('a stale identity the server refuses is replaced by a fresh one', async () => {
  const storage = memoryStorage();
  storage.setItem('imbot:http://127.0.0.1:8080/imbot/:identity', JSON.stringify(tokenAnswer({ token: 'old' })));
  const w = load({ storage });
  await settle();
  assert.deepEqual(w.fetches[0].body, { uri: GUEST, token: 'old' });
  w.fetches[0].respond(401, { error: 'expired' });
  await settle();
  w.clock.advance(0);
  await settle();
  assert.deepEqual(w.fetches[1].body, {});
  w.fetches[1].respond(200, tokenAnswer({ uri: 'sip:guest-new@guest.invalid', token: 'new' }));
  await settle();
  assert.equal(w.ws().url, WS);
  w.ws().accept();
  assert.equal(w.state().uri, 'sip:guest-new@guest.invalid');
});

test('a 429 on a renewal while connected is retried quietly; the chat goes on', async () => {
  const w = await connected();
  w.clock.advance(9 * 60000 + 1000);
  await settle();
  assert.equal(w.fetches.length, 2);
  w.fetches[1].respond(429, {}, { 'Retry-After': '30' });
  await settle();
  assert.equal(w.q('imbot-status').textContent, 'Connected');
  w.window.ImbotChat.send('still here');
  assert.equal(lastReq(w, 'MESSAGE').h('X-Imbot-Guest'), 'tok-1');
  w.clock.advance(30000);
  await settle();
  assert.equal(w.fetches.length, 3);
  assert.deepEqual(w.fetches[2].body, { uri: GUEST, token: 'tok-1' });
});
