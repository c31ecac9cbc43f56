package helpdesk

import (
	"fmt"

	"github.com/imbot-dev/imbot/imbotcmd"
	"github.com/imbot-dev/imbot/rules"
)

// Name is the name a config file enables the plugin with: `plugins: [helpdesk]`.
const Name = "helpdesk"

// Plugin returns the plugin for an imbot binary: the functions of Funcs, on the bot's store,
// which must also be a Store (both stores of imbot are).
//
//	func main() { imbotcmd.Main(helpdesk.Plugin()) }
func Plugin() imbotcmd.Plugin {
	return imbotcmd.Plugin{Name: Name, Funcs: func(st imbotcmd.Store) (rules.Funcs, error) {
		s, ok := st.(Store)
		if !ok {
			return nil, fmt.Errorf("the store %T cannot look tickets up", st)
		}
		return Funcs(s), nil
	}}
}
