'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { TypingSender, TypingReceiver } = require('../src/typing');

// A manual clock for the state machines.
function clock() {
  let now = 1000000;
  let id = 0;
  const timers = new Map();
  return {
    opts: {
      now: () => now,
      setTimeout: (f, ms) => { timers.set(++id, { at: now + ms, f }); return id; },
      clearTimeout: (t) => timers.delete(t)
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].f();
      }
      now = end;
    },
    pending: () => timers.size
  };
}

test('sender: first keystroke sends active, more keystrokes within 50 s do not', () => {
  const c = clock();
  const sent = [];
  const s = new TypingSender((st) => sent.push(st), c.opts);
  s.input('h');
  c.advance(1000);
  s.input('he');
  c.advance(1000);
  s.input('hel');
  assert.deepEqual(sent, ['active']);
  assert.equal(s.active, true);
});

test('sender: idle after 5 s without a keystroke', () => {
  const c = clock();
  const sent = [];
  const s = new TypingSender((st) => sent.push(st), c.opts);
  s.input('h');
  c.advance(4999);
  assert.deepEqual(sent, ['active']);
  c.advance(1);
  assert.deepEqual(sent, ['active', 'idle']);
  assert.equal(s.active, false);
  s.input('hi'); // typing again: active again
  assert.deepEqual(sent, ['active', 'idle', 'active']);
});

test('sender: active again at most every 50 s while still typing', () => {
  const c = clock();
  const sent = [];
  const s = new TypingSender((st) => sent.push(st), c.opts);
  for (let t = 0; t <= 100000; t += 2000) { // a keystroke every 2 s for 100 s
    s.input('x'.repeat(t / 2000 + 1));
    c.advance(2000);
  }
  // at 0 s, 50 s and 100 s
  assert.deepEqual(sent, ['active', 'active', 'active']);
});

test('sender: clearing the field sends idle at once', () => {
  const c = clock();
  const sent = [];
  const s = new TypingSender((st) => sent.push(st), c.opts);
  s.input('abc');
  s.input('   ');
  assert.deepEqual(sent, ['active', 'idle']);
  c.advance(10000);
  assert.deepEqual(sent, ['active', 'idle'], 'no second idle from the timer');
  s.input(''); // already idle: nothing
  assert.deepEqual(sent, ['active', 'idle']);
});

test('sender: never idle after the text was sent', () => {
  const c = clock();
  const sent = [];
  const s = new TypingSender((st) => sent.push(st), c.opts);
  s.input('hello');
  s.sent();
  c.advance(60000);
  s.input(''); // the field is cleared after sending
  assert.deepEqual(sent, ['active']);
  assert.equal(c.pending(), 0);
});

test('sender: stop says idle only if it said active', () => {
  const c = clock();
  const sent = [];
  const s = new TypingSender((st) => sent.push(st), c.opts);
  s.stop();
  assert.deepEqual(sent, []);
  s.input('a');
  s.stop();
  assert.deepEqual(sent, ['active', 'idle']);
});

test('receiver: active shows, idle hides', () => {
  const c = clock();
  const seen = [];
  const r = new TypingReceiver((v) => seen.push(v), c.opts);
  r.composing({ state: 'active', refresh: 60 });
  r.composing({ state: 'active', refresh: 60 }); // a refresh: no change event
  assert.deepEqual(seen, [true]);
  r.composing({ state: 'idle', refresh: 120 });
  assert.deepEqual(seen, [true, false]);
  r.composing(null); // unparsable: ignored
  assert.deepEqual(seen, [true, false]);
});

test('receiver: a text message ends the typing indication', () => {
  const c = clock();
  const seen = [];
  const r = new TypingReceiver((v) => seen.push(v), c.opts);
  r.composing({ state: 'active', refresh: 120 });
  r.message();
  assert.deepEqual(seen, [true, false]);
  assert.equal(c.pending(), 0);
});

test('receiver: active runs out after its refresh', () => {
  const c = clock();
  const seen = [];
  const r = new TypingReceiver((v) => seen.push(v), c.opts);
  r.composing({ state: 'active', refresh: 120 });
  c.advance(60000);
  r.composing({ state: 'active', refresh: 60 }); // refreshed at 60 s for 60 s more
  c.advance(59999);
  assert.deepEqual(seen, [true]);
  c.advance(1);
  assert.deepEqual(seen, [true, false]);
});
