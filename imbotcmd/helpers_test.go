package imbotcmd

import (
	"context"
	"io"
)

// run runs one command of an imbot with no plugins, reading nothing from stdin.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Program{}.Run(ctx, args, nil, stdout, stderr)
}

// runWith is run with sl installed in sipgo, as Main installs it.
func runWith(ctx context.Context, sl *sipLog, args []string, stdout, stderr io.Writer) int {
	return Program{}.run(ctx, sl, args, nil, stdout, stderr)
}

// cmdChat runs `imbot chat` without SIP, of an imbot with no plugins.
func cmdChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := Program{}.cli(nil)
	if err != nil {
		panic(err)
	}
	return c.cmdChat(ctx, args, stdin, stdout, stderr)
}
