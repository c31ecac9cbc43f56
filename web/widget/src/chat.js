'use strict';
// imbot chat widget: one <script> tag on any page, SIP over WebSocket to an
// imbot bot (JsSIP, page mode MESSAGE). See ../README.md for the contract.
//
// Rules kept throughout: text from the visitor or the bot reaches the page
// only through textContent; no inline style, no eval; every class is
// prefixed "imbot-"; one global, window.ImbotChat.

// UA, WebSocketInterface and Constants straight from JsSIP's lib/ (not its
// index, which only adds exports this widget does not use).
const JsSIP = {
  UA: require('jssip/lib/UA'),
  WebSocketInterface: require('jssip/lib/WebSocketInterface'),
  C: require('jssip/lib/Constants')
};
const isComposing = require('./iscomposing');
const { TypingSender, TypingReceiver, REFRESH_S } = require('./typing');
const store = require('./store');
const { resolveBase, parseRetryAfter, renewDelay, checkToken } = require('./util');

// Replaced by the build with package.json's version.
const VERSION = __IMBOT_VERSION__; // eslint-disable-line no-undef
const TEXT_TYPE = 'text/plain;charset=UTF-8';
const ACCEPT = 'text/plain, application/im-iscomposing+xml';
const TOO_MANY = 'Too many visitors from your address; try again in a minute.';
const MAX_RETRY_AFTER_S = 600;

function main() {
  if (window.ImbotChat) return; // the tag was included twice

  const script = document.currentScript ||
    document.querySelector('script[data-imbot]') ||
    document.querySelector('script[src$="chat.js"]');
  const base = resolveBase(script && script.getAttribute('data-imbot'),
    script && script.src, document.baseURI || location.href);
  const guestName = (script && script.getAttribute('data-name')) || 'Guest';
  const prefix = 'imbot:' + base + ':';
  let storage = null;
  try { storage = window.sessionStorage; } catch (e) { storage = null; }

  const saved = store.load(storage, prefix);
  let identity = saved.identity;     // the token endpoint's answer
  const messages = saved.messages;   // {id, dir, text, ts, state?}
  const views = new Map();           // message id -> its element
  let seq = 0;

  let ua = null;
  let connected = false;
  let everConnected = false;
  let started = false;
  let tokenTimer = null;
  let tokenBusy = false;
  let tokenFailures = 0;
  let unread = 0;
  let isOpen = false;

  // ---------- DOM ----------

  function el(tag, cls, attrs, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const uid = 'imbot-' + Math.random().toString(36).slice(2, 8);
  const root = el('div', 'imbot-root');
  root.hidden = true; // until chat.css has loaded: no flash of unstyled widget

  const launcher = el('button', 'imbot-launcher', {
    type: 'button', 'aria-expanded': 'false', 'aria-controls': uid + '-panel'
  });
  const launcherLabel = el('span', 'imbot-launcher-label', null, 'Chat with us');
  const badge = el('span', 'imbot-badge', { 'aria-hidden': 'true' });
  const badgeSr = el('span', 'imbot-sr', null, '');
  badge.hidden = true;
  launcher.append(launcherLabel, badge, badgeSr);

  const botName = () => (identity && identity.name) || 'Helpdesk';
  const panel = el('div', 'imbot-panel', {
    id: uid + '-panel', role: 'dialog', 'aria-label': 'Chat with ' + botName()
  });
  panel.hidden = true;

  const header = el('div', 'imbot-header');
  const heading = el('div', 'imbot-title', { id: uid + '-title' }, botName());
  const status = el('div', 'imbot-status', { role: 'status' }, '');
  const closeBtn = el('button', 'imbot-close', { type: 'button', 'aria-label': 'Close chat' });
  closeBtn.append(el('span', null, { 'aria-hidden': 'true' }, '\u00d7'));
  const titles = el('div', 'imbot-titles');
  titles.append(heading, status);
  header.append(titles, closeBtn);

  const log = el('div', 'imbot-log', {
    role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
    'aria-label': 'Conversation', tabindex: '0'
  });
  const empty = el('p', 'imbot-empty', null, 'Ask us anything: type your message below.');
  log.append(empty);

  // Always in the page, so that screen readers hear it when it fills in.
  const typing = el('div', 'imbot-typing', { 'aria-live': 'polite' });

  const composer = el('div', 'imbot-composer');
  const label = el('label', 'imbot-sr', { for: uid + '-input' }, 'Your message');
  const input = el('textarea', 'imbot-input', {
    id: uid + '-input', rows: '1', placeholder: 'Type your message\u2026',
    autocomplete: 'off', maxlength: '4000'
  });
  const sendBtn = el('button', 'imbot-send', { type: 'button' }, 'Send');
  composer.append(label, input, sendBtn);

  panel.append(header, log, typing, composer);
  root.append(panel, launcher);

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = 'imbot-status' + (kind ? ' imbot-status-' + kind : '');
  }

  function setName() {
    heading.textContent = botName();
    panel.setAttribute('aria-label', 'Chat with ' + botName());
  }

  function timeOf(ts) {
    try {
      return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    } catch (e) {
      return '';
    }
  }

  const STATE_TEXT = {
    queued: 'Waiting for connection\u2026',
    sending: 'Sending\u2026',
    sent: 'Sent',
    failed: 'Not sent'
  };

  // The time and delivery state are updated in place, so that the log (which
  // announces additions only) does not read out "Sending", "Sent" for every
  // message; a failure adds nodes, so it is announced.
  function renderMeta(m, view) {
    const parts = [timeOf(m.ts)];
    if (m.dir === 'out') parts.push(STATE_TEXT[m.state] || '');
    view.metaText.textContent = parts.filter(Boolean).join(' \u00b7 ');
    const failed = m.dir === 'out' && m.state === 'failed';
    if (!failed && view.failure) {
      view.failure.remove();
      view.failure = null;
    }
    if (failed && !view.failure) {
      const failure = el('span', 'imbot-failure');
      failure.append(el('span', 'imbot-sr', null, 'Message not sent. '));
      const retry = el('button', 'imbot-retry', { type: 'button' }, 'Retry');
      retry.addEventListener('click', () => {
        m.retried503 = false;
        m.retriedAuth = false;
        m.netRetries = 0;
        input.focus();
        transmit(m);
      });
      failure.append(retry);
      view.failure = failure;
      view.meta.append(failure);
    }
  }

  function render(m) {
    // Follow the conversation if the visitor was reading its end.
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    let view = views.get(m.id);
    let added = false;
    if (!view) {
      const row = el('div', 'imbot-msg imbot-msg-' + m.dir);
      const who = el('span', 'imbot-sr', null, m.dir === 'out' ? 'You: ' : botName() + ': ');
      const bubble = el('div', 'imbot-bubble');
      bubble.append(who, el('span', 'imbot-text', null, m.text)); // textContent only
      const meta = el('div', 'imbot-meta');
      const metaText = el('span', 'imbot-meta-text');
      meta.append(metaText);
      row.append(bubble, meta);
      view = { row, meta, metaText, failure: null };
      views.set(m.id, view);
      log.append(row);
      empty.hidden = true;
      added = true;
    }
    if (m.dir === 'out') view.row.setAttribute('data-state', m.state);
    renderMeta(m, view);
    if (atBottom || (added && m.dir === 'out')) log.scrollTop = log.scrollHeight;
  }

  function save() {
    store.saveMessages(storage, prefix, messages);
  }

  function update(m) {
    render(m);
    save();
  }

  function newId() {
    seq += 1;
    return Date.now().toString(36) + '-' + seq.toString(36) + '-' + Math.random().toString(36).slice(2, 6);
  }

  // ---------- open / close ----------

  function open(restoring) {
    if (isOpen) return;
    isOpen = true;
    panel.hidden = false;
    root.classList.add('imbot-is-open');
    launcher.setAttribute('aria-expanded', 'true');
    unread = 0;
    badge.hidden = true;
    badgeSr.textContent = '';
    store.saveOpen(storage, prefix, true);
    log.scrollTop = log.scrollHeight;
    start();
    if (restoring !== true) input.focus(); // a reload does not steal the page's focus
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    panel.hidden = true;
    root.classList.remove('imbot-is-open');
    launcher.setAttribute('aria-expanded', 'false');
    store.saveOpen(storage, prefix, false);
    typingOut.stop();
    launcher.focus();
  }

  launcher.addEventListener('click', () => (isOpen ? close() : open()));
  launcher.addEventListener('keydown', (e) => {
    if ((e.key === 'Escape' || e.key === 'Esc') && isOpen) close();
  });
  closeBtn.addEventListener('click', close);
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' || e.key === 'Esc') {
      e.preventDefault();
      close();
    }
  });

  // Grows with its text up to 140 px, then scrolls. (Setting element.style
  // from script is allowed by a style-src 'self' CSP; style="" is not.)
  function autosize() {
    input.style.height = 'auto';
    const borders = input.offsetHeight - input.clientHeight;
    const want = input.scrollHeight + borders;
    input.style.height = Math.min(want, 140) + 'px';
    input.style.overflowY = want > 140 ? 'auto' : 'hidden';
  }

  input.addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a newline; never while an IME composes.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendFromInput();
    }
  });
  input.addEventListener('input', () => {
    autosize();
    typingOut.input(input.value);
  });
  sendBtn.addEventListener('click', () => {
    sendFromInput();
    input.focus();
  });

  function sendFromInput() {
    if (send(input.value)) {
      input.value = '';
      autosize();
    }
  }

  // ---------- typing ----------

  const typingOut = new TypingSender((state) => {
    if (!ua || !connected || !identity) return; // nobody to tell
    try {
      ua.sendMessage(identity.bot, isComposing.build(state, { refresh: REFRESH_S }), {
        contentType: isComposing.CONTENT_TYPE,
        extraHeaders: guestHeaders(),
        eventHandlers: { failed() { /* an indication, not worth a retry */ } }
      });
    } catch (e) { /* invalid target: nothing to do */ }
  });

  const typingIn = new TypingReceiver((active) => {
    typing.textContent = '';
    typing.classList.toggle('imbot-typing-on', active);
    if (active) {
      typing.append(el('span', 'imbot-typing-text', null, botName() + ' is typing'),
        el('span', 'imbot-sr', null, '\u2026'));
      const dots = el('span', 'imbot-dots', { 'aria-hidden': 'true' });
      dots.append(el('span', 'imbot-dot'), el('span', 'imbot-dot'), el('span', 'imbot-dot'));
      typing.append(dots);
    }
  });

  // ---------- identity (guest token) ----------

  function tokenRetry(ms) {
    clearTimeout(tokenTimer);
    tokenTimer = setTimeout(() => requestToken(), ms);
  }

  async function requestToken() {
    if (tokenBusy) return;
    tokenBusy = true;
    clearTimeout(tokenTimer);
    const prev = identity;
    let res = null;
    try {
      res = await fetch(base + 'token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(prev ? { uri: prev.uri, token: prev.token } : {}),
        credentials: 'omit',
        cache: 'no-store'
      });
    } catch (e) {
      res = null;
    }
    tokenBusy = false;
    if (!res) {
      tokenFailures += 1;
      if (!connected) setStatus('Cannot reach the chat service; retrying\u2026', 'error');
      tokenRetry(Math.min(60000, 2000 * Math.pow(2, tokenFailures)));
      return;
    }
    if (res.status === 429) {
      // While connected the current token still works: retry quietly.
      if (!connected) setStatus(TOO_MANY, 'error');
      const after = parseRetryAfter(res.headers.get('Retry-After'));
      tokenRetry(Math.max(5, Math.min(after || 60, 600)) * 1000);
      return;
    }
    if (!res.ok) {
      tokenFailures += 1;
      if (prev && res.status >= 400 && res.status < 500) {
        // The old identity is not renewable (expired, or from another bot):
        // ask for a fresh one.
        identity = null;
        tokenRetry(0);
        return;
      }
      if (!connected) setStatus('The chat service is unavailable; retrying\u2026', 'error');
      tokenRetry(Math.min(60000, 2000 * Math.pow(2, tokenFailures)));
      return;
    }
    let data = null;
    try { data = checkToken(await res.json()); } catch (e) { data = null; }
    if (!data) {
      tokenFailures += 1;
      if (!connected) setStatus('The chat service gave an unreadable answer; retrying\u2026', 'error');
      tokenRetry(Math.min(60000, 2000 * Math.pow(2, tokenFailures)));
      return;
    }
    tokenFailures = 0;
    applyIdentity(data);
  }

  function applyIdentity(data) {
    const old = identity;
    identity = data;
    store.saveIdentity(storage, prefix, identity);
    setName();
    const delay = renewDelay(data.expires, Date.now());
    if (delay !== null) tokenRetry(delay);
    if (!ua || !old || old.uri !== data.uri || old.ws !== data.ws) {
      startUA();
    } else if (connected) {
      setStatus('Connected', 'ok');
      flush(); // messages held back for a token renewal
    }
  }

  function guestHeaders() {
    return ['X-Imbot-Guest: ' + identity.token, 'Accept: ' + ACCEPT];
  }

  // ---------- SIP ----------

  function startUA() {
    if (ua) {
      const old = ua;
      ua = null;
      old.removeAllListeners();
      try { old.stop(); } catch (e) { /* already stopped */ }
    }
    connected = false;
    let agent;
    try {
      agent = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(identity.ws)],
        uri: identity.uri,
        display_name: guestName,
        register: false,
        session_timers: false,
        connection_recovery_min_interval: 2,
        connection_recovery_max_interval: 10
      });
    } catch (e) {
      setStatus('The chat service sent a configuration this page cannot use.', 'error');
      return;
    }
    ua = agent;
    agent.on('connecting', () => {
      if (agent !== ua) return;
      setStatus(everConnected ? 'Reconnecting\u2026' : 'Connecting\u2026', 'busy');
    });
    agent.on('connected', () => {
      if (agent !== ua) return;
      connected = true;
      for (const m of messages) m.netRetries = 0;
      everConnected = true;
      setStatus('Connected', 'ok');
      hello();
      flush();
    });
    agent.on('disconnected', () => {
      if (agent !== ua) return;
      connected = false;
      // What was on its way when the socket dropped may never have arrived:
      // send it again on reconnect (at least once rather than lost).
      for (const m of messages) {
        if (m.dir === 'out' && m.state === 'sending') {
          m.attempt = (m.attempt || 0) + 1;
          m.state = 'queued';
          update(m);
        }
      }
      setStatus(everConnected ? 'Reconnecting\u2026' : 'Connecting\u2026', 'busy');
    });
    agent.on('newMessage', (e) => {
      if (agent !== ua || e.originator !== 'remote') return;
      incoming(e.request);
    });
    agent.start();
  }

  // On every (re)connection: an OPTIONS to the bot with the guest token, so
  // that the bot learns this WebSocket is the guest's way in and can send
  // (a greeting, an agent's reply after a reconnect) before the visitor does.
  function hello() {
    try {
      ua.sendOptions(identity.bot, null, {
        contentType: 'text/plain',
        extraHeaders: guestHeaders(),
        eventHandlers: { failed() { /* the bot may not answer OPTIONS */ } }
      });
    } catch (e) { /* ignore */ }
  }

  function incoming(request) {
    const type = isComposing.mediaType(request.getHeader('Content-Type'));
    const body = typeof request.body === 'string' ? request.body : '';
    if (type === 'text/plain') {
      typingIn.message();
      if (!body) return;
      const m = { id: newId(), dir: 'in', text: body, ts: Date.now() };
      messages.push(m);
      update(m);
      if (!isOpen) {
        unread += 1;
        badge.textContent = String(unread);
        badgeSr.textContent = unread === 1 ? ' (1 new message)' : ' (' + unread + ' new messages)';
        badge.hidden = false;
      }
    } else if (type === isComposing.CONTENT_TYPE) {
      typingIn.composing(isComposing.parse(body));
    }
    // Anything else: ignored (JsSIP has answered 200 already).
  }

  function start() {
    if (started) return;
    started = true;
    setStatus('Connecting\u2026', 'busy');
    requestToken();
  }

  function send(text) {
    text = String(text === undefined || text === null ? '' : text).trim();
    if (!text) return false;
    typingOut.sent();
    const m = { id: newId(), dir: 'out', text, ts: Date.now(), state: 'queued' };
    messages.push(m);
    update(m);
    start();
    transmit(m);
    return true;
  }

  function transmit(m) {
    if (!ua || !connected || !identity) {
      m.state = 'queued'; // goes out on (re)connect
      update(m);
      return;
    }
    m.state = 'sending';
    update(m);
    // Only the latest attempt may change the state: an attempt given up on
    // (the socket dropped under it) may still time out later.
    const attempt = (m.attempt || 0) + 1;
    m.attempt = attempt;
    const done = (state) => {
      if (m.attempt !== attempt) return false;
      m.state = state;
      update(m);
      return true;
    };
    try {
      ua.sendMessage(identity.bot, m.text, {
        contentType: TEXT_TYPE,
        extraHeaders: guestHeaders(),
        eventHandlers: {
          succeeded() { done('sent'); },
          failed(e) { failed(m, e, done); }
        }
      });
    } catch (e) {
      done('failed');
    }
  }

  function failed(m, e, done) {
    const res = e && e.response;
    const code = res ? res.status_code : 0;
    if (!res && (!connected || e.cause === JsSIP.C.causes.CONNECTION_ERROR)) {
      // The network went away under it: send again on reconnect.
      m.netRetries = (m.netRetries || 0) + 1;
      if (!connected || m.netRetries <= 3) {
        done('queued');
        if (connected) setTimeout(() => { if (connected) flush(); }, 2000);
        return;
      }
    }
    if (code === 503 && !m.retried503) {
      const after = parseRetryAfter(res.getHeader('Retry-After'));
      if (after !== null && after <= MAX_RETRY_AFTER_S) {
        m.retried503 = true;
        if (done('sending')) {
          const attempt = m.attempt;
          setTimeout(() => { if (m.attempt === attempt) transmit(m); }, after * 1000);
        }
        return;
      }
    }
    if ((code === 401 || code === 403) && !m.retriedAuth) {
      // The token may have run out (a sleeping tab misses its renewal timer).
      m.retriedAuth = true;
      if (done('queued')) requestToken();
      return;
    }
    done('failed');
  }

  // Send what waited for a connection, in the order it was typed.
  function flush() {
    for (const m of messages) {
      if (m.dir === 'out' && m.state === 'queued') transmit(m);
    }
  }

  // ---------- boot ----------

  for (const m of messages) render(m);

  window.addEventListener('pagehide', () => typingOut.stop());

  window.ImbotChat = Object.freeze({
    version: VERSION,
    open() { open(); },
    close() { close(); },
    send(text) { return send(text); },
    // For tests and host pages: a snapshot, not live objects.
    state() {
      return {
        open: isOpen,
        connected,
        uri: identity ? identity.uri : null,
        base,
        messages: messages.map((m) => ({ dir: m.dir, text: m.text, state: m.state }))
      };
    }
  });

  function mount() {
    const href = base + 'chat.css';
    let link = null;
    for (const l of document.querySelectorAll('link[rel="stylesheet"]')) {
      if (l.href === href) link = l;
    }
    const show = () => { root.hidden = false; };
    if (link) {
      show();
    } else {
      link = el('link', null, { rel: 'stylesheet', href });
      link.addEventListener('load', show);
      link.addEventListener('error', show);
      setTimeout(show, 3000);
      document.head.append(link);
    }
    document.body.append(root);
    // A conversation under way in this tab picks up again after a reload.
    if (identity || messages.length) start();
    if (saved.open) open(true);
  }

  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount);
}

main();
