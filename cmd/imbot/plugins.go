package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/imbot-dev/imbot/examples/helpdesk/plugin"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// pluginFactory builds a compiled-in plugin's rule functions on the bot's store.
type pluginFactory func(st recordStore) (rules.Funcs, error)

// plugins are the Go plugins compiled into imbot, by the name a config file enables them
// with (`plugins: [helpdesk]`). `imbot run` registers the functions of the enabled ones on
// its store; `imbot check`, `test` and `chat` register those of every one, on a memory
// store, so that rule files calling them validate and run anywhere.
var plugins = map[string]pluginFactory{
	// tickets.create, tickets.status, tickets.mine, tickets.urgency (examples/helpdesk).
	"helpdesk": func(st recordStore) (rules.Funcs, error) {
		ps, ok := st.(plugin.Store)
		if !ok {
			return nil, fmt.Errorf("the store %T cannot look tickets up", st)
		}
		return plugin.Funcs(ps), nil
	},
}

// pluginNames returns the names of the compiled-in plugins, sorted.
func pluginNames() []string {
	names := make([]string, 0, len(plugins))
	for n := range plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// pluginFuncs returns the rule functions of the named plugins, backed by st. Two plugins
// defining the same function is an error.
func pluginFuncs(names []string, st recordStore) (rules.Funcs, error) {
	funcs := rules.Funcs{}
	from := map[string]string{}
	for _, name := range names {
		mk, ok := plugins[name]
		if !ok {
			return nil, fmt.Errorf("plugins: unknown plugin %q; compiled in: %s", name, strings.Join(pluginNames(), ", "))
		}
		fs, err := mk(st)
		if err != nil {
			return nil, fmt.Errorf("plugins: %s: %w", name, err)
		}
		for fn, f := range fs {
			if other, dup := from[fn]; dup && other != name {
				return nil, fmt.Errorf("plugins: %s and %s both define the function %s", other, name, fn)
			}
			from[fn] = name
			funcs[fn] = f
		}
	}
	return funcs, nil
}

// allPluginFuncs returns the functions of every compiled-in plugin, backed by st (a fresh
// memory store when nil): what check, test and chat register.
func allPluginFuncs(st recordStore) (rules.Funcs, error) {
	if st == nil {
		st = &store.Memory{}
	}
	return pluginFuncs(pluginNames(), st)
}
