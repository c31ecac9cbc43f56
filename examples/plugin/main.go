// Command plugin is imbot with a plugin of its own, pizza (pizza.price(size) and the handler
// pizza.menu), next to the ones imbot ships: the whole of a custom imbot's main.
//
//	go run ./examples/plugin check examples/plugin/rules.yaml
//	go run ./examples/plugin test examples/plugin/rules_test.yaml
//	go run ./examples/plugin chat -r examples/plugin/rules.yaml
package main

import (
	"github.com/imbot-dev/imbot/examples/plugin/pizza"
	"github.com/imbot-dev/imbot/imbotcmd"
	"github.com/imbot-dev/imbot/plugins/helpdesk"
)

func main() { program().Main() }

// program is imbot with the plugins it ships and pizza.
func program() imbotcmd.Program {
	return imbotcmd.Program{Plugins: []imbotcmd.Plugin{helpdesk.Plugin(), pizza.Plugin()}}
}
