// Package pizza is an imbot plugin of the kind an application writes: a rule function,
// pizza.price(size), and a Go handler, pizza.menu. Its Plugin goes into the main of a
// custom imbot (see examples/plugin).
package pizza

import (
	"context"
	"fmt"
	"strings"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/imbotcmd"
	"github.com/imbot-dev/imbot/rules"
)

// Name enables the plugin in imbot.yaml: `plugins: [pizza]`.
const Name = "pizza"

// sizes are the sizes on the menu, smallest first, with their prices in cents.
var sizes = []struct {
	name  string
	cents int
}{{"small", 850}, {"medium", 1100}, {"large", 1350}}

// Plugin returns the plugin: pizza.price(size) is the price of a pizza of that size
// ("small", "medium" or "large") such as "11.00", and the handler pizza.menu replies with the
// menu. Neither needs the store.
func Plugin() imbotcmd.Plugin {
	return imbotcmd.Plugin{
		Name: Name,
		Funcs: func(imbotcmd.Store) (rules.Funcs, error) {
			return rules.Funcs{"pizza.price": rules.Func1(price)}, nil
		},
		Handlers: func(imbotcmd.Store) (rules.Handlers, error) {
			return rules.Handlers{"pizza.menu": bot.HandlerFunc(menu)}, nil
		},
	}
}

func price(_ context.Context, size string) (string, error) {
	for _, s := range sizes {
		if strings.EqualFold(strings.TrimSpace(size), s.name) {
			return fmt.Sprintf("%d.%02d", s.cents/100, s.cents%100), nil
		}
	}
	return "", fmt.Errorf("pizza.price: no size %q; the sizes are small, medium and large", size)
}

func menu(ctx context.Context, w bot.Responder, _ *bot.Event) error {
	var lines []string
	for _, s := range sizes {
		p, err := price(ctx, s.name)
		if err != nil {
			return err
		}
		lines = append(lines, s.name+" "+p)
	}
	return w.Reply(ctx, "Pizzas: "+strings.Join(lines, ", ")+".")
}
