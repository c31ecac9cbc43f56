'use strict';
// Small pure helpers of the widget, testable from node.

// The endpoints' base URL: data-imbot (resolved against the page), or else the
// script's own URL with "chat.js" (and any query or fragment) stripped.
// Always ends with "/".
function resolveBase(dataImbot, scriptSrc, pageUrl) {
  let base;
  if (dataImbot) {
    base = new URL(dataImbot, pageUrl).href;
  } else if (scriptSrc) {
    const u = new URL(scriptSrc, pageUrl);
    u.search = '';
    u.hash = '';
    base = u.href.replace(/[^/]*$/, '');
  } else {
    base = new URL('/imbot/', pageUrl).href;
  }
  return base.endsWith('/') ? base : base + '/';
}

// Retry-After in seconds (SIP: "120" or "120;duration=3600 (comment)"; HTTP
// also allows a date). null when absent or unreadable.
function parseRetryAfter(value, now) {
  if (value === null || value === undefined) return null;
  const s = String(value).trim();
  const m = /^(\d+)/.exec(s);
  if (m) return Number(m[1]);
  const t = Date.parse(s);
  if (!isNaN(t)) return Math.max(0, Math.ceil((t - (now || Date.now())) / 1000));
  return null;
}

// When to renew a token that expires at `expires` (RFC 3339): a minute
// before, but never sooner than minMs from now.
function renewDelay(expires, now, minMs) {
  const t = Date.parse(expires);
  const floor = minMs === undefined ? 5000 : minMs;
  if (isNaN(t)) return null;
  return Math.max(floor, t - 60000 - now);
}

// The token endpoint's answer, checked: the fields the widget relies on.
function checkToken(data) {
  if (!data || typeof data !== 'object') return null;
  for (const k of ['uri', 'token', 'ws', 'bot']) {
    if (typeof data[k] !== 'string' || !data[k]) return null;
  }
  if (!/^wss?:\/\//i.test(data.ws)) return null;
  if (!/^sips?:/i.test(data.uri) || !/^sips?:/i.test(data.bot)) return null;
  return {
    uri: data.uri,
    token: data.token,
    ws: data.ws,
    bot: data.bot,
    name: typeof data.name === 'string' && data.name ? data.name : 'Helpdesk',
    expires: typeof data.expires === 'string' ? data.expires : ''
  };
}

module.exports = { resolveBase, parseRetryAfter, renewDelay, checkToken };
