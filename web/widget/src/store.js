'use strict';
// What survives a reload within the tab: the guest identity, the conversation
// and whether the panel was open. Kept in sessionStorage (passed in, so that
// node can test this with a stand-in). Nothing here touches the DOM.

const MAX_MESSAGES = 200;
const STATES = ['queued', 'sending', 'sent', 'failed'];

function safeGet(storage, key) {
  try {
    const raw = storage && storage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch (e) {
    return null;
  }
}

function safeSet(storage, key, value) {
  try {
    if (storage) storage.setItem(key, JSON.stringify(value));
    return true;
  } catch (e) {
    return false; // quota, privacy mode, sandboxed frame: the chat still works
  }
}

function validIdentity(id) {
  return !!id && typeof id === 'object' &&
    ['uri', 'token', 'ws', 'bot'].every((k) => typeof id[k] === 'string' && id[k] !== '');
}

function validMessage(m) {
  return !!m && typeof m === 'object' && typeof m.id === 'string' &&
    (m.dir === 'in' || m.dir === 'out') && typeof m.text === 'string' &&
    typeof m.ts === 'number';
}

// load -> {identity, messages, open}. A message that was in flight when the
// page went away has an unknown fate: it comes back as "failed" with a retry
// button rather than being sent twice behind the visitor's back. A queued one
// (typed while offline, never sent) stays queued and goes out on connect.
function load(storage, prefix) {
  const identity = safeGet(storage, prefix + 'identity');
  const stored = safeGet(storage, prefix + 'messages');
  const messages = (Array.isArray(stored) ? stored : []).filter(validMessage).map((m) => {
    const out = { id: m.id, dir: m.dir, text: m.text, ts: m.ts };
    if (m.dir === 'out') {
      out.state = STATES.indexOf(m.state) >= 0 ? m.state : 'failed';
      if (out.state === 'sending') out.state = 'failed';
    }
    return out;
  });
  return {
    identity: validIdentity(identity) ? identity : null,
    messages,
    open: safeGet(storage, prefix + 'open') === true
  };
}

function saveIdentity(storage, prefix, identity) {
  return safeSet(storage, prefix + 'identity', identity);
}

function saveMessages(storage, prefix, messages) {
  const keep = messages.slice(-MAX_MESSAGES).map((m) => {
    const out = { id: m.id, dir: m.dir, text: m.text, ts: m.ts };
    if (m.dir === 'out') out.state = m.state;
    return out;
  });
  return safeSet(storage, prefix + 'messages', keep);
}

function saveOpen(storage, prefix, open) {
  return safeSet(storage, prefix + 'open', !!open);
}

module.exports = { load, saveIdentity, saveMessages, saveOpen, validIdentity, MAX_MESSAGES };
