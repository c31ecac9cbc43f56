package web

import (
	"embed"
	"io/fs"
)

// static is the widget as built by web/widget (npm run build): committed, so that go build
// needs no npm.
//
//go:embed static
var static embed.FS

// Assets returns the widget built into imbot: chat.js, chat.css, demo.html and
// LICENSES.txt (the licences of the npm packages bundled in chat.js).
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}
