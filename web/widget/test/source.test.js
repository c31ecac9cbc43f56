'use strict';
// Static checks of the sources and of the committed build in web/static.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const here = path.join(__dirname, '..');
const staticDir = path.join(here, '..', 'static');
const src = (f) => fs.readFileSync(path.join(here, 'src', f), 'utf8');
const jsSources = fs.readdirSync(path.join(here, 'src')).filter((f) => f.endsWith('.js'));

test('no HTML parsing or code from strings in the widget sources', () => {
  assert.ok(jsSources.includes('chat.js'));
  for (const f of jsSources) {
    const code = src(f);
    for (const bad of [/innerHTML/, /outerHTML/, /insertAdjacentHTML/, /document\.write/, /\beval\s*\(/, /new\s+Function\s*\(/, /\.cssText/, /setAttribute\(\s*['"](style|on\w+)['"]/]) {
      assert.doesNotMatch(code, bad, `${f} uses ${bad}`);
    }
  }
});

test('the bundle has no HTML sinks or eval either (JsSIP included)', () => {
  const js = fs.readFileSync(path.join(staticDir, 'chat.js'), 'utf8');
  for (const bad of [/innerHTML/, /outerHTML/, /insertAdjacentHTML/, /document\.write/, /\beval\(/, /new Function\(/]) {
    assert.doesNotMatch(js, bad, `chat.js contains ${bad}`);
  }
  assert.match(js, /^\/\*! imbot chat widget \d+\.\d+\.\d+ \| MIT/);
});

test('CSS: every class is imbot- prefixed; reduced motion and small screens handled', () => {
  const css = src('chat.css');
  const classes = [...css.replace(/\/\*[\s\S]*?\*\//g, '').matchAll(/\.(-?[_a-zA-Z][\w-]*)/g)].map((m) => m[1]);
  assert.ok(classes.length > 20);
  for (const c of classes) assert.ok(c.startsWith('imbot-'), `class .${c} is not prefixed`);
  assert.match(css, /@media \(prefers-reduced-motion: reduce\)/);
  assert.match(css, /@media \(max-width: 480px\)/);
  assert.match(css, /:focus-visible/);
  // The classes the script sets exist in the stylesheet.
  const used = new Set([...src('chat.js').matchAll(/'(imbot-[\w-]+)/g)].map((m) => m[1]));
  for (const c of used) {
    if (c === 'imbot-' || c.endsWith('-')) continue; // prefixes joined at run time
    assert.ok(classes.includes(c), `chat.js uses .${c}, chat.css has no rule for it`);
  }
});

test('demo page: relative chat.js, a heading, no inline script or style', () => {
  const html = fs.readFileSync(path.join(staticDir, 'demo.html'), 'utf8');
  assert.match(html, /<script src="chat\.js" defer><\/script>/);
  assert.match(html, /<h1>[^<]+<\/h1>/);
  assert.doesNotMatch(html, /<style|style=|<script>|<script(?![^>]*\bsrc=)[^>]*>|\son\w+=/i);
});

test('web/static holds only the build output', () => {
  assert.deepEqual(fs.readdirSync(staticDir).sort(), ['LICENSES.txt', 'chat.css', 'chat.js', 'demo.html']);
  const lic = fs.readFileSync(path.join(staticDir, 'LICENSES.txt'), 'utf8');
  assert.match(lic, /^jssip 3\.13\.8 \(MIT\)$/m);
  assert.match(lic, /Permission is hereby granted/);
});

test('the committed build matches a fresh build, byte for byte', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'imbot-widget-'));
  try {
    execFileSync(process.execPath, [path.join(here, 'build.mjs'), '--out', out], { cwd: here, stdio: 'pipe' });
    for (const f of fs.readdirSync(staticDir)) {
      const a = fs.readFileSync(path.join(staticDir, f));
      const b = fs.readFileSync(path.join(out, f));
      assert.ok(a.equals(b), `web/static/${f} differs from a fresh build: run npm run build`);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('README states the sizes of the committed chat.js and chat.css', () => {
  const zlib = require('node:zlib');
  const readme = fs.readFileSync(path.join(here, 'README.md'), 'utf8');
  for (const f of ['chat.js', 'chat.css']) {
    const row = new RegExp('^\\| `' + f.replace('.', '\\.') + '`[^|]*\\| ([\\d,]+) B \\| ([\\d,]+) B \\|$', 'm').exec(readme);
    assert.ok(row, `no size row for ${f} in README.md`);
    const data = fs.readFileSync(path.join(staticDir, f));
    assert.equal(Number(row[1].replace(/,/g, '')), data.length, `${f} raw size in README.md`);
    assert.equal(Number(row[2].replace(/,/g, '')), zlib.gzipSync(data, { level: 9 }).length, `${f} gzip size in README.md`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'));
  assert.ok(readme.includes(`JsSIP ${pkg.dependencies.jssip}`));
  assert.ok(readme.includes(`esbuild ${pkg.devDependencies.esbuild}`));
});
