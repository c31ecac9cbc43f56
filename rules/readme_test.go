package rules

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// TestReadmeExample loads the rule file shown in examples/rules/README.md, so that the
// one-screen tutorial stays correct.
func TestReadmeExample(t *testing.T) {
	b, err := os.ReadFile("../examples/rules/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## The language in one screen\n\n```yaml\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the README")
	}
	if _, err := Load(Options{FS: fstest.MapFS{"readme.yaml": {Data: []byte(src)}}}, "readme.yaml"); err != nil {
		t.Fatal(err)
	}
}
