package rules

import (
	"embed"
	"io/fs"
)

//go:embed demo/demo.yaml demo/demo_test.yaml
var demoFS embed.FS

// Demo is the demo rule set `imbot run` serves when no rule file is given: a small
// helpdesk with a greeting, help, a FAQ, a two-step flow and a fallback. DemoFile is its
// rule file and DemoTestFile its conversation tests, both inside Demo:
//
//	engine, err := rules.New(rules.Options{FS: rules.Demo}, rules.DemoFile)
var Demo fs.FS = mustSub(demoFS, "demo")

// Names of the demo files inside Demo.
const (
	DemoFile     = "demo.yaml"
	DemoTestFile = "demo_test.yaml"
)

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
