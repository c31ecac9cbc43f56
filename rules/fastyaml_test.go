package rules

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fastYAMLSeeds are documents fastYAML reads, and documents it must leave to yaml.v3.
var fastYAMLSeeds = []string{
	"version: 1\nvars: {company: Contoso, n: 3, ok: true, q: 'it''s', d: \"x y\"}\nrules:\n  - name: greet\n    match: \"hello\"\n    reply: Hi {{ sender.name }}!\n",
	"a: 1\n",
	"# comment\n\na: 1 # trailing\nb:   x  \n",
	"  a: 1\n  b: [x, 'y z', \"w\", 12]\n",
	"k:\n- x\n- y\nz: 1\n",
	"k:\n  - x\n  - name: a\n    match: [b, c]\n  -   name: d\n      n: 2\n",
	"- a\n- b: c\n  d: e\n- [1, 2]\n- {}\n- []\n",
	"a: bé ü\nb: {é: ü, x: 'ä'}\nc: \"日本 語\"\n",
	"a: y\nb: yes\nc: on\nd: No\ne: ~\nf: null\ng: Null\nh: TRUE\ni: 0\nj: 0123\nk: 1.5\nl: -3\nm: .inf\nn: 2024-01-02\no: 1_000\np: 0x1f\n",
	"y: 1\nn: 2\non: 3\ntrue: 4\n1: 5\n",
	"a: 1\na: 2\n",
	"a:\n  b:\n    c: d\n  e: f\ng: h\n",
	"rules:\n  - name: x\n    when: vars.step == 12 && sender.name != \"bob\"\n    regex: '([\\w.+-]+)@x\\.(?:com|org)'\n",
	"a: b: c\n", "a: 'x\n  y'\n", "a: |\n  text\n", "a: >\n  text\n", "a: &x 1\nb: *x\n", "a: !!str 1\n",
	"---\na: 1\n", "a: 1\n---\nb: 2\n", "%YAML 1.2\n---\na: 1\n", "a:\tb\n", "a: b\r\n", "a: \"x\\ty\"\n",
	"a:\n", "a:\nb: 1\n", "a: b\n  c\n", "a: [x,\n  y]\n", "a: {b: [c]}\n", "a: [b, ]\n", "- - x\n", "-\n  a\n",
	"a: -1\n", "a: ? b\n", "? a\n: b\n", "a: b #c\n", "a: b#c\n", "a: 'b'#c\n", "a: 'b' #c\n", "a : b\n", "a:b\n",
	"a: {b: c d, e: 'f'}   # c\n", "a: {b: c, d}\n", "a: [b: c]\n", "a: {b:c}\n", "x: \"a\" \"b\"\n", "x\n", "\"a\": b\n",
	"a:\n  - b\n c: d\n", "a:\n  - b\n  c: d\n", "- a\nb: c\n", "a:\n    - b\n  c: d\n", "a: 1\n b: 2\n", "  a: 1\nb: 2\n",
	"a: \u0085b\n", "a: \u2028\n", "\ufeffa: 1\n", "a: <<\n<<: {b: c}\n", "a: 'x'' y'''\n", "a: ''\nb: \"\"\n",
	"a: [\"x, y\", 'z']\n", "a: {\"k\": v, 'l': 'w'}\n", "a: [ x , y ]\n", "a: {  }\n",
	"a: |\n  x\n  y\nb: 1\n", "a: >-\n  x\n  y\n\n  z\n\n\nb: >\n   w\n", "a: |-\n  x\n\n   y\n  # z\n# c\nb: 1\n",
	"- name: x\n  reply: >-\n    Hello {{ sender.name }},\n    how are you?\n  when: x\n", "a: | # c\n  x\n", "a: |x\n  y\n",
	"a: |+\n  x\n\n", "a: |2\n   x\n", "a: >\n  x\n    y\n  z\n", "a: |\n\n  x\n", "a: |\n  \n  x\n", "a: |\n  x\n   \n",
	"a: |\n  x", "a: |\n  x  \n  y \n", "a: >\n  x  \n  y \n", "a: |\nb: 1\n", "a: |\n x\n  y\n", "a:\n  b: |\n   x\n  c: >-\n   y\n",
	"a: |\n    x\n  y\n", "a: >\n  - x\n  k: v\n  'q'\n", "a: |-\n  x\n\n\n", "a: >-\n\n  x\n", "a: |\n  x\n \n  y\n",
	"a: 1s\nb: 30s\nc: 1h30m\nd: 2x\ne: 1e3\nf: 0x1f\ng: 1_000s\nh: 3 minutes\ni: 12:30\nj: 1.5h\nk: 2024-01-02T10:00:00Z\nl: 9 lives\nm: 0o17\nn: 1n\n",
	"...\n", "a: ...\n", "a: ---\n", "a: - b\n", "a: * b\n", "a: @x\n", "a: `x`\n", "a: %x\n", "a: =x\n",
}

// TestFastYAML checks that every document fastYAML reads gives the tree yaml.v3 gives, on the
// seeds, the test data and generated rule sets; and that it reads the generated ones (it
// is what makes loading 100,000 rules fast).
func TestFastYAML(t *testing.T) {
	docs := append([]string(nil), fastYAMLSeeds...)
	var files []string
	for _, g := range []string{"testdata/*.yaml", "testdata/*/*.yaml", "demo/*.yaml", "../examples/*/*.yaml", "../imbotcmd/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(data))
	}
	for _, mix := range []mixSpec{{}, mixRegex10, mixReal} {
		src, _ := genMix(300, mix)
		if fastYAML(src) == nil {
			t.Errorf("fastYAML does not read the generated rules (%+v)", mix)
		}
		docs = append(docs, src)
	}
	src, _ := genRules(300)
	docs = append(docs, src, genFaulty(0, 300), genFaulty(1, 300))
	read := 0
	for _, d := range docs {
		if checkFastYAML(t, d) {
			read++
		}
	}
	if read < len(docs)/3 {
		t.Errorf("fastYAML read %d of %d documents", read, len(docs))
	}
}

// checkFastYAML compares fastYAML's tree of doc with yaml.v3's and reports whether fastYAML
// read it.
func checkFastYAML(t *testing.T, doc string) bool {
	t.Helper()
	fast := fastYAML(doc)
	if fast == nil {
		return false
	}
	var want yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	if err := dec.Decode(&want); err != nil {
		t.Errorf("fastYAML reads %q, yaml.v3 fails: %v", doc, err)
		return true
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		t.Errorf("fastYAML reads %q, yaml.v3 finds several documents", doc)
		return true
	}
	if d := diffNodes(fast, &want, "doc"); d != "" {
		t.Errorf("fastYAML and yaml.v3 differ on %q: %s", doc, d)
	}
	return true
}

// diffNodes describes the first difference between two trees, comments aside.
func diffNodes(a, b *yaml.Node, path string) string {
	if a == nil || b == nil {
		if a != b {
			return path + ": one is nil"
		}
		return ""
	}
	fa := fmt.Sprintf("kind=%d style=%d tag=%q value=%q anchor=%q at %d:%d alias=%v", a.Kind, a.Style, a.Tag, a.Value, a.Anchor, a.Line, a.Column, a.Alias != nil)
	fb := fmt.Sprintf("kind=%d style=%d tag=%q value=%q anchor=%q at %d:%d alias=%v", b.Kind, b.Style, b.Tag, b.Value, b.Anchor, b.Line, b.Column, b.Alias != nil)
	if fa != fb {
		return fmt.Sprintf("%s: fast %s, yaml.v3 %s", path, fa, fb)
	}
	if len(a.Content) != len(b.Content) {
		return fmt.Sprintf("%s: fast %d children, yaml.v3 %d", path, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if d := diffNodes(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// FuzzFastYAML checks that whatever fastYAML reads, yaml.v3 reads as the same tree.
func FuzzFastYAML(f *testing.F) {
	for _, s := range fastYAMLSeeds {
		f.Add(s)
	}
	src, _ := genMix(20, mixReal)
	f.Add(src)
	f.Add(strings.ReplaceAll(genFaulty(1, 14), "\"", "'"))
	f.Fuzz(func(t *testing.T, doc string) {
		if !isUTF8([]byte(doc)) || strings.IndexByte(doc, 0) >= 0 {
			return // parseYAML refuses these first
		}
		checkFastYAML(t, doc)
	})
}

// TestFastYAMLBlockScalars compares fastYAML with yaml.v3 on generated documents with block
// scalars: literal and folded, every chomping, lines indented more or less, blank lines,
// lines of spaces, comments, in mappings and in sequences of mappings.
func TestFastYAMLBlockScalars(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	read := 0
	const docs = 3000
	for range docs {
		var b strings.Builder
		base := pick("", "  ")
		if base != "" {
			b.WriteString("top:\n")
		}
		item := r.IntN(3) == 0
		if r.IntN(4) == 0 { // a sequence of block scalars
			fmt.Fprintf(&b, "%sseq:\n", base)
			dash := base + pick("", "  ")
			for range 1 + r.IntN(3) {
				fmt.Fprintf(&b, "%s- %s%s\n", dash, pick("|", ">"), pick("", "-", "", "+"))
				in := dash + pick("  ", "   ", " ", "")
				for j := range 1 + r.IntN(4) {
					switch r.IntN(6) {
					case 0:
						if j > 0 {
							b.WriteString("\n")
						}
					case 1:
						b.WriteString(in + "  more\n")
					default:
						b.WriteString(in + pick("text", "a b", "- x", "k: v") + "\n")
					}
				}
			}
		}
		for k := range 1 + r.IntN(3) {
			ind := base
			if item {
				if k == 0 {
					b.WriteString(base + "- n: 1\n")
				}
				ind = base + "  "
			}
			clean := r.IntN(3) > 0 // a common form, which fastYAML reads
			if clean {
				fmt.Fprintf(&b, "%sk%d: %s%s\n", ind, k, pick("|", ">"), pick("", "-"))
			} else {
				fmt.Fprintf(&b, "%sk%d: %s%s%s\n", ind, k, pick("|", ">"), pick("", "", "-", "+", "2"), pick("", "", " # c", "x"))
			}
			in := ind + pick("  ", "   ", " ")
			for j := range 1 + r.IntN(5) {
				c := r.IntN(8)
				if clean && j == 0 {
					c = 4
				} else if clean && c < 4 {
					c = []int{4, 0, 2}[r.IntN(3)]
				}
				switch c {
				case 0:
					b.WriteString("\n")
				case 1:
					b.WriteString(in[:r.IntN(len(in)+1)] + pick("", " ", "  ") + "\n")
				case 2:
					b.WriteString(in + "  " + pick("more", "- x", "# c") + "\n")
				case 3:
					b.WriteString(ind + pick("# out", "x") + "\n")
				default:
					b.WriteString(in + pick("text", "a b", "{{ x }}", "é", "k: v", "#h", "t ") + "\n")
				}
			}
		}
		if r.IntN(4) == 0 {
			b.WriteString(base + "z: 1\n")
		}
		doc := b.String()
		if r.IntN(20) == 0 {
			doc = strings.TrimSuffix(doc, "\n")
		}
		if checkFastYAML(t, doc) {
			read++
		}
	}
	if read < docs/10 {
		t.Errorf("fastYAML read %d of %d documents", read, docs)
	}
	t.Logf("fastYAML read %d of %d documents", read, docs)
}
