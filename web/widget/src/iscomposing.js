'use strict';
// RFC 3994 "isComposing" documents: what the widget sends while the visitor
// types and what it reads when the bot (or the agent behind it) types.
// Plain CommonJS without DOM APIs so that node's test runner can require it.

const CONTENT_TYPE = 'application/im-iscomposing+xml';
const NS = 'urn:ietf:params:xml:ns:im-iscomposing';
// RFC 3994 section 5.2: without <refresh>, an "active" state expires after 120 s.
const DEFAULT_REFRESH = 120;

function escapeXml(s) {
  return String(s).replace(/[<>&"']/g, (c) => ({
    '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;'
  }[c]));
}

function unescapeXml(s) {
  return s.replace(/&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, (m, e) => {
    switch (e) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'quot': return '"';
      case 'apos': return "'";
      default: {
        const n = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : m;
      }
    }
  });
}

// build('active', {refresh: 60}) or build('idle').
function build(state, opts) {
  opts = opts || {};
  if (state !== 'active' && state !== 'idle') {
    throw new TypeError('isComposing state must be "active" or "idle"');
  }
  const contentType = opts.contentType || 'text/plain';
  let xml = '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<isComposing xmlns="' + NS + '">\n' +
    '  <state>' + state + '</state>\n' +
    '  <contenttype>' + escapeXml(contentType) + '</contenttype>\n';
  if (state === 'active' && opts.refresh) {
    xml += '  <refresh>' + Math.max(1, Math.floor(opts.refresh)) + '</refresh>\n';
  }
  xml += '</isComposing>\n';
  return xml;
}

function element(xml, name) {
  // An element with or without a namespace prefix: <state> or <im:state>.
  const re = new RegExp('<(?:[A-Za-z_][\\w.-]*:)?' + name + '(?:\\s[^>]*)?>([^<]*)</(?:[A-Za-z_][\\w.-]*:)?' + name + '\\s*>');
  const m = re.exec(xml);
  return m ? unescapeXml(m[1]).trim() : null;
}

// parse(body) -> {state: 'active'|'idle', refresh: seconds, contentType, lastActive}
// or null when the body is not an isComposing document with a valid state.
function parse(body) {
  if (typeof body !== 'string') return null;
  const xml = body.replace(/<!--[\s\S]*?-->/g, '');
  if (!/<(?:[A-Za-z_][\w.-]*:)?isComposing[\s>]/.test(xml)) return null;
  const state = (element(xml, 'state') || '').toLowerCase();
  if (state !== 'active' && state !== 'idle') return null;
  let refresh = DEFAULT_REFRESH;
  const r = element(xml, 'refresh');
  if (r !== null && /^\d+$/.test(r) && Number(r) > 0) refresh = Number(r);
  return {
    state,
    refresh,
    contentType: element(xml, 'contenttype'),
    lastActive: element(xml, 'lastactive')
  };
}

// isContentType('application/im-iscomposing+xml; charset=utf-8') -> true
function mediaType(header) {
  return String(header || '').split(';')[0].trim().toLowerCase();
}

module.exports = { CONTENT_TYPE, DEFAULT_REFRESH, build, parse, mediaType, escapeXml };
