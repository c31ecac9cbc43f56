// Command imbot runs a SIP IM chatbot, with the plugins imbot ships (helpdesk).
//
// Usage:
//
//	imbot run [flags]    serve SIP IM on 127.0.0.1 (UDP and TCP) until interrupted
//	imbot check FILE...  validate a config file and rule files
//	imbot test [FILE...] run YAML conversation tests with no network
//	imbot chat [-r FILE] chat with the rules in the terminal
//	imbot chat --to ADDR [--session]  chat with a running bot over SIP
//	imbot send --to ADDR [--wait D] TEXT  send one message (exit 0 delivered, 3 accepted, 1 refused)
//	imbot config         print the default configuration, every key commented
//	imbot version        print the version
//
// Run "imbot run -h" for the flags. The command line is the package imbotcmd: a main of a
// few lines like this one builds an imbot with more plugins.
package main

import (
	"github.com/imbot-dev/imbot/imbotcmd"
	"github.com/imbot-dev/imbot/plugins/helpdesk"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	imbotcmd.Program{Version: version, Plugins: []imbotcmd.Plugin{helpdesk.Plugin()}}.Main()
}
