'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const ic = require('../src/iscomposing');

test('build active: RFC 3994 document with state, contenttype and refresh', () => {
  const xml = ic.build('active', { refresh: 60 });
  assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n/);
  assert.match(xml, /<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">/);
  assert.match(xml, /<state>active<\/state>/);
  assert.match(xml, /<contenttype>text\/plain<\/contenttype>/);
  assert.match(xml, /<refresh>60<\/refresh>/);
  assert.match(xml, /<\/isComposing>\n$/);
});

test('build idle carries no refresh', () => {
  const xml = ic.build('idle', { refresh: 60 });
  assert.match(xml, /<state>idle<\/state>/);
  assert.doesNotMatch(xml, /refresh/);
});

test('build refuses other states', () => {
  assert.throws(() => ic.build('typing'), TypeError);
});

test('parse reads what build writes', () => {
  assert.deepEqual(ic.parse(ic.build('active', { refresh: 60 })),
    { state: 'active', refresh: 60, contentType: 'text/plain', lastActive: null });
  const idle = ic.parse(ic.build('idle'));
  assert.equal(idle.state, 'idle');
});

test('parse: refresh defaults to 120 s (RFC 3994 5.2) and ignores junk', () => {
  const doc = '<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>';
  assert.equal(ic.parse(doc).refresh, 120);
  assert.equal(ic.parse(doc.replace('</state>', '</state><refresh>abc</refresh>')).refresh, 120);
  assert.equal(ic.parse(doc.replace('</state>', '</state><refresh>0</refresh>')).refresh, 120);
  assert.equal(ic.parse(doc.replace('</state>', '</state><refresh> 90 </refresh>')).refresh, 90);
});

test('parse: namespace prefixes, whitespace, case, comments, lastactive, entities', () => {
  const doc = `<?xml version="1.0" encoding="UTF-8"?>
<!-- <state>idle</state> in a comment does not count -->
<im:isComposing xmlns:im="urn:ietf:params:xml:ns:im-iscomposing"
   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <im:state>
     Active
  </im:state>
  <im:lastactive>2026-12-01T12:00:00Z</im:lastactive>
  <im:contenttype>text/plain&amp;x</im:contenttype>
  <im:refresh>75</im:refresh>
</im:isComposing>`;
  assert.deepEqual(ic.parse(doc), {
    state: 'active', refresh: 75, contentType: 'text/plain&x', lastActive: '2026-12-01T12:00:00Z'
  });
});

test('parse rejects what is not an isComposing document', () => {
  assert.equal(ic.parse(''), null);
  assert.equal(ic.parse(null), null);
  assert.equal(ic.parse('hello'), null);
  assert.equal(ic.parse('<foo><state>active</state></foo>'), null);
  assert.equal(ic.parse('<isComposing><state>typing</state></isComposing>'), null);
  assert.equal(ic.parse('<isComposing></isComposing>'), null);
});

test('mediaType drops parameters and case', () => {
  assert.equal(ic.mediaType('Application/IM-isComposing+XML; charset=utf-8'), ic.CONTENT_TYPE);
  assert.equal(ic.mediaType('text/plain;charset=UTF-8'), 'text/plain');
  assert.equal(ic.mediaType(undefined), '');
});

test('escapeXml escapes the five XML specials', () => {
  assert.equal(ic.escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
});
