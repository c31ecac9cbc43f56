'use strict';
// Runs the built web/static/chat.js in a node vm with just enough of a DOM,
// fetch, WebSocket and timers (all fake and driven by the test) to check the
// widget's contract without a browser: which requests it makes, which SIP it
// sends over the WebSocket, what it puts into the page.
//
// The stand-in elements throw on innerHTML / outerHTML / insertAdjacentHTML,
// so any use of them by the widget (or a bundled library) fails the tests.

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const BUNDLE = path.join(__dirname, '..', '..', 'static', 'chat.js');

class Text {
  constructor(data) { this.nodeType = 3; this.data = String(data); this.parentNode = null; }
  get textContent() { return this.data; }
}

class ClassList {
  constructor(el) { this.el = el; }
  _get() { return (this.el.getAttribute('class') || '').split(/\s+/).filter(Boolean); }
  _set(list) { this.el.setAttribute('class', list.join(' ')); }
  contains(c) { return this._get().includes(c); }
  add(c) { const l = this._get(); if (!l.includes(c)) l.push(c); this._set(l); }
  remove(c) { this._set(this._get().filter((x) => x !== c)); }
  toggle(c, force) {
    const on = force === undefined ? !this.contains(c) : !!force;
    if (on) this.add(c); else this.remove(c);
    return on;
  }
}

function forbidden(name) {
  return {
    get() { throw new Error(name + ' read: the widget must not use HTML parsing'); },
    set() { throw new Error(name + ' written: the widget must not use HTML parsing'); }
  };
}

class Element {
  constructor(doc, tag) {
    this.ownerDocument = doc;
    this.nodeType = 1;
    this.tagName = String(tag).toUpperCase();
    this.childNodes = [];
    this.parentNode = null;
    this.attrs = new Map();
    this.listeners = new Map();
    this.style = {};
    this.classList = new ClassList(this);
    this.hidden = false;
    this.value = '';
    this.scrollTop = 0;
    this.scrollHeight = 0;
    this.clientHeight = 0;
    this.offsetHeight = 0;
  }
  get className() { return this.getAttribute('class') || ''; }
  set className(v) { this.setAttribute('class', v); }
  get id() { return this.getAttribute('id') || ''; }
  get href() { return this.getAttribute('href') || ''; }
  get rel() { return this.getAttribute('rel') || ''; }
  setAttribute(k, v) { this.attrs.set(k, String(v)); }
  getAttribute(k) { return this.attrs.has(k) ? this.attrs.get(k) : null; }
  hasAttribute(k) { return this.attrs.has(k); }
  removeAttribute(k) { this.attrs.delete(k); }
  append(...nodes) {
    for (let n of nodes) {
      if (typeof n === 'string') n = new Text(n);
      if (n.parentNode) n.parentNode.childNodes.splice(n.parentNode.childNodes.indexOf(n), 1);
      n.parentNode = this;
      this.childNodes.push(n);
    }
  }
  appendChild(n) { this.append(n); return n; }
  remove() {
    if (!this.parentNode) return;
    this.parentNode.childNodes.splice(this.parentNode.childNodes.indexOf(this), 1);
    this.parentNode = null;
  }
  get children() { return this.childNodes.filter((n) => n.nodeType === 1); }
  get textContent() { return this.childNodes.map((n) => n.textContent).join(''); }
  set textContent(v) {
    for (const n of this.childNodes) n.parentNode = null;
    this.childNodes = [];
    if (v !== null && v !== undefined && String(v) !== '') this.append(new Text(v));
  }
  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }
  removeEventListener(type, fn) {
    const l = this.listeners.get(type) || [];
    const i = l.indexOf(fn);
    if (i >= 0) l.splice(i, 1);
  }
  dispatch(type, props) {
    const ev = Object.assign({ type, target: this, defaultPrevented: false,
      preventDefault() { this.defaultPrevented = true; } }, props || {});
    for (const fn of (this.listeners.get(type) || []).slice()) fn.call(this, ev);
    if (props && props.bubbles && this.parentNode && this.parentNode.dispatch) {
      this.parentNode.dispatch(type, Object.assign({}, props, { target: ev.target || this }));
    }
    return ev;
  }
  click() { this.dispatch('click'); }
  focus() { this.ownerDocument.activeElement = this; }
  blur() { if (this.ownerDocument.activeElement === this) this.ownerDocument.activeElement = null; }
  // Walk the subtree (this included).
  *walk() {
    yield this;
    for (const c of this.children) yield* c.walk();
  }
  find(pred) { for (const e of this.walk()) if (pred(e)) return e; return null; }
  findAll(pred) { return [...this.walk()].filter(pred); }
  byClass(c) { return this.find((e) => e.classList.contains(c)); }
  allByClass(c) { return this.findAll((e) => e.classList.contains(c)); }
  // Visible: neither it nor an ancestor has the hidden property set.
  get shown() {
    for (let e = this; e && e.nodeType === 1; e = e.parentNode) if (e.hidden) return false;
    return true;
  }
}
for (const name of ['innerHTML', 'outerHTML']) {
  Object.defineProperty(Element.prototype, name, forbidden(name));
}
Element.prototype.insertAdjacentHTML = function () {
  throw new Error('insertAdjacentHTML: the widget must not use HTML parsing');
};

// Timers under the test's control: advance(ms) runs what falls due.
function fakeClock() {
  let now = 0;
  let nextId = 1;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms, ...args) {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, Number(ms) || 0), fn, args });
      return id;
    },
    setInterval(fn, ms, ...args) {
      const id = nextId++;
      const every = Math.max(1, Number(ms) || 0);
      timers.set(id, { at: now + every, fn, args, every });
      return id;
    },
    clear(id) { timers.delete(id); },
    pending() { return timers.size; },
    // Runs every timer due within ms, in order; returns how many ran.
    advance(ms) {
      const end = now + ms;
      let ran = 0;
      for (;;) {
        let best = null;
        for (const [id, t] of timers) if (t.at <= end && (!best || t.at < best[1].at)) best = [id, t];
        if (!best) break;
        const [id, t] = best;
        now = t.at;
        if (t.every) t.at += t.every; else timers.delete(id);
        ran++;
        t.fn(...t.args);
      }
      now = end;
      return ran;
    }
  };
}

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)); },
    removeItem: (k) => { m.delete(k); },
    get length() { return m.size; },
    _map: m
  };
}

// Parses one SIP message as sent by JsSIP into {first, headers: Map(lower -> [values]), body}.
function parseSip(frame) {
  const i = frame.indexOf('\r\n\r\n');
  const head = frame.slice(0, i).split('\r\n');
  const headers = new Map();
  for (const line of head.slice(1)) {
    const c = line.indexOf(':');
    const k = line.slice(0, c).trim().toLowerCase();
    if (!headers.has(k)) headers.set(k, []);
    headers.get(k).push(line.slice(c + 1).trim());
  }
  const method = /^([A-Z]+) /.exec(head[0]);
  return {
    first: head[0],
    method: head[0].startsWith('SIP/2.0') ? null : method && method[1],
    headers,
    h(k) { const v = headers.get(k.toLowerCase()); return v ? v[0] : null; },
    body: frame.slice(i + 4)
  };
}

function load(opts) {
  opts = opts || {};
  const clock = fakeClock();
  const storage = opts.storage || memoryStorage();
  const fetches = [];
  const sockets = [];

  const document = {
    activeElement: null,
    baseURI: opts.pageUrl || 'http://127.0.0.1:8080/imbot/demo',
    addEventListener() {},
    querySelector() { return null; },
    querySelectorAll() { return []; },
    createElement(tag) { return new Element(document, tag); },
    createTextNode(t) { return new Text(t); }
  };
  document.documentElement = new Element(document, 'html');
  document.head = new Element(document, 'head');
  document.body = new Element(document, 'body');
  document.documentElement.append(document.head, document.body);
  const script = new Element(document, 'script');
  script.src = opts.scriptSrc || 'http://127.0.0.1:8080/imbot/chat.js';
  if (opts.dataImbot) script.setAttribute('data-imbot', opts.dataImbot);
  if (opts.dataName) script.setAttribute('data-name', opts.dataName);
  document.currentScript = script;

  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.CONNECTING = 0; this.OPEN = 1; this.CLOSING = 2; this.CLOSED = 3;
      this.sent = [];
      sockets.push(this);
    }
    send(data) { this.sent.push(String(data)); }
    close() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      if (this.onclose) this.onclose({ wasClean: true, code: 1000, reason: '' });
    }
    // Test side:
    accept() { this.readyState = 1; if (this.onopen) this.onopen({}); }
    drop() { this.readyState = 3; if (this.onclose) this.onclose({ wasClean: false, code: 1006, reason: '' }); }
    deliver(frame) { if (this.onmessage) this.onmessage({ data: frame }); }
    requests(method) {
      return this.sent.map(parseSip).filter((m) => !method || m.method === method);
    }
  }

  function fetch(url, init) {
    return new Promise((resolve, reject) => {
      fetches.push({
        url: String(url),
        init,
        body: init && init.body ? JSON.parse(init.body) : null,
        respond(status, json, headers) {
          const h = new Map(Object.entries(headers || {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
          resolve({
            status,
            ok: status >= 200 && status < 300,
            headers: { get: (k) => (h.has(k.toLowerCase()) ? h.get(k.toLowerCase()) : null) },
            json: async () => json
          });
        },
        fail() { reject(new TypeError('Failed to fetch')); }
      });
    });
  }

  const windowListeners = new Map();
  const sandbox = {
    document,
    navigator: { userAgent: 'node-test' },
    location: { href: document.baseURI },
    sessionStorage: storage,
    fetch,
    WebSocket: FakeWebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clear,
    setInterval: clock.setInterval,
    clearInterval: clock.clear,
    URL,
    TextEncoder,
    TextDecoder,
    console: opts.console || { log() {}, info() {}, warn() {}, error() {}, debug() {} },
    addEventListener(type, fn) {
      if (!windowListeners.has(type)) windowListeners.set(type, []);
      windowListeners.get(type).push(fn);
    },
    removeEventListener() {}
  };
  sandbox.window = sandbox;
  sandbox.self = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(fs.readFileSync(BUNDLE, 'utf8'), sandbox, { filename: 'chat.js' });
  if (!opts.cssPending) {
    const link = document.head.find((e) => e.tagName === 'LINK');
    if (link) link.dispatch('load');
  }

  return {
    window: sandbox,
    document,
    storage,
    clock,
    fetches,
    sockets,
    root: () => document.body.byClass('imbot-root'),
    q: (cls) => document.body.byClass(cls),
    qa: (cls) => document.body.allByClass(cls),
    ws: () => sockets[sockets.length - 1],
    // ImbotChat.state() copied into this realm (deepEqual checks prototypes).
    state: () => JSON.parse(JSON.stringify(sandbox.ImbotChat.state())),
    fireWindow(type) { for (const fn of windowListeners.get(type) || []) fn({ type }); }
  };
}

// Lets promise callbacks (fetch answers) run.
function settle() {
  return new Promise((r) => setImmediate(r));
}

// A SIP response to a request frame, echoing what RFC 3261 says it must.
function response(reqFrame, code, reason, extra) {
  const r = parseSip(reqFrame);
  const lines = ['SIP/2.0 ' + code + ' ' + reason];
  for (const v of r.headers.get('via')) lines.push('Via: ' + v);
  lines.push('From: ' + r.h('from'));
  lines.push('To: ' + r.h('to') + (/;tag=/.test(r.h('to')) ? '' : ';tag=bot1'));
  lines.push('Call-ID: ' + r.h('call-id'));
  lines.push('CSeq: ' + r.h('cseq'));
  for (const e of extra || []) lines.push(e);
  lines.push('Content-Length: 0');
  return lines.join('\r\n') + '\r\n\r\n';
}

let reqSeq = 0;
// A MESSAGE from the bot to the guest.
function botMessage(guestUri, contentType, body) {
  reqSeq++;
  const len = Buffer.byteLength(body, 'utf8');
  return [
    'MESSAGE ' + guestUri + ' SIP/2.0',
    'Via: SIP/2.0/WS 127.0.0.1:5066;branch=z9hG4bK-test' + reqSeq,
    'Max-Forwards: 70',
    'From: "Contoso IT Helpdesk" <sip:helpdesk@127.0.0.1>;tag=bot' + reqSeq,
    'To: <' + guestUri + '>',
    'Call-ID: test-call-' + reqSeq,
    'CSeq: 1 MESSAGE',
    'Content-Type: ' + contentType,
    'Content-Length: ' + len,
    '',
    body
  ].join('\r\n');
}

module.exports = { load, settle, response, botMessage, parseSip, memoryStorage, Element };
