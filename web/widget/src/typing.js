'use strict';
// Typing state machines, free of DOM and SIP so that node can test them.
// Timers and the clock are injectable (defaults: the global ones).

const IDLE_AFTER_MS = 5000;      // "idle" after 5 s without a keystroke
const REFRESH_S = 60;            // <refresh> announced in "active"
const RESEND_ACTIVE_MS = 50000;  // "active" again at most every 50 s while typing

function clock(opts) {
  return {
    now: (opts && opts.now) || (() => Date.now()),
    setTimeout: (opts && opts.setTimeout) || ((f, ms) => setTimeout(f, ms)),
    clearTimeout: (opts && opts.clearTimeout) || ((t) => clearTimeout(t))
  };
}

// Outgoing: send(state) is called with 'active' or 'idle'.
class TypingSender {
  constructor(send, opts) {
    this._send = send;
    this._c = clock(opts);
    this._active = false;
    this._lastActiveAt = 0;
    this._idleTimer = null;
  }

  get active() { return this._active; }

  // Called on every edit of the text field with its current value.
  input(value) {
    if (!String(value).trim()) {
      // The field was cleared: the visitor stopped composing.
      if (this._active) this._goIdle();
      else this._clearIdle();
      return;
    }
    const now = this._c.now();
    if (!this._active || now - this._lastActiveAt >= RESEND_ACTIVE_MS) {
      this._active = true;
      this._lastActiveAt = now;
      this._send('active');
    }
    this._clearIdle();
    this._idleTimer = this._c.setTimeout(() => {
      this._idleTimer = null;
      if (this._active) this._goIdle();
    }, IDLE_AFTER_MS);
  }

  // The text was sent: the message itself ends the composing state, no "idle".
  sent() {
    this._clearIdle();
    this._active = false;
  }

  // The widget closes or goes away: say "idle" if we said "active".
  stop() {
    if (this._active) this._goIdle();
    this._clearIdle();
  }

  _goIdle() {
    this._clearIdle();
    this._active = false;
    this._send('idle');
  }

  _clearIdle() {
    if (this._idleTimer !== null) {
      this._c.clearTimeout(this._idleTimer);
      this._idleTimer = null;
    }
  }
}

// Incoming: onChange(true|false) whenever the remote typing indication changes.
class TypingReceiver {
  constructor(onChange, opts) {
    this._onChange = onChange;
    this._c = clock(opts);
    this._active = false;
    this._timer = null;
  }

  get active() { return this._active; }

  // A parsed isComposing document ({state, refresh}).
  composing(doc) {
    if (!doc) return;
    if (doc.state === 'active') {
      this._clear();
      this._timer = this._c.setTimeout(() => {
        this._timer = null;
        this._set(false);
      }, doc.refresh * 1000);
      this._set(true);
    } else {
      this._clear();
      this._set(false);
    }
  }

  // A text message arrived: it ends the remote composing state.
  message() {
    this._clear();
    this._set(false);
  }

  _set(v) {
    if (this._active !== v) {
      this._active = v;
      this._onChange(v);
    }
  }

  _clear() {
    if (this._timer !== null) {
      this._c.clearTimeout(this._timer);
      this._timer = null;
    }
  }
}

module.exports = { TypingSender, TypingReceiver, IDLE_AFTER_MS, REFRESH_S, RESEND_ACTIVE_MS };
