package main

import (
	"go/build"
	"strings"
	"testing"
)

// TestNoExampleImported: the imbot command is built from the library (imbotcmd) and the
// plugins it ships, never from an example, directly or through another package of the module.
func TestNoExampleImported(t *testing.T) {
	const module = "github.com/imbot-dev/imbot"
	seen := map[string]bool{}
	var walk func(path, from string)
	walk = func(path, from string) {
		if seen[path] || !strings.HasPrefix(path, module) {
			return
		}
		seen[path] = true
		if strings.Contains(path, "/examples/") {
			t.Errorf("%s imports the example %s", from, path)
			return
		}
		pkg, err := build.Default.Import(path, ".", 0)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			walk(imp, path)
		}
	}
	walk(module+"/cmd/imbot", "")
	if len(seen) < 3 {
		t.Fatalf("walked only %d packages of the module: the walk found nothing to check", len(seen))
	}
}
