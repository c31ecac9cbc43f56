package imbotcmd

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// Plugin is a Go plugin of an imbot binary: rule functions and Go handlers built on the
// bot's store. A package that provides one usually has a function returning it, for the
// main of a custom imbot to list:
//
//	// Plugin is pizza.price(size) for rules.
//	func Plugin() imbotcmd.Plugin {
//		return imbotcmd.Plugin{Name: "pizza", Funcs: func(imbotcmd.Store) (rules.Funcs, error) {
//			return rules.Funcs{"pizza.price": rules.Func1(price)}, nil
//		}}
//	}
//
// `imbot run` builds the plugins its config file enables by name (`plugins: [pizza]`) on
// its store; `imbot check`, `imbot test` and `imbot chat` build every plugin of the binary
// on a memory store.
type Plugin struct {
	// Name enables the plugin in a config file's plugins list.
	Name string
	// Funcs returns the functions rules may call, such as "pizza.price", backed by st.
	// Nil: none. Two plugins defining the same function cannot be enabled together.
	Funcs func(st Store) (rules.Funcs, error)
	// Handlers returns the Go handlers rules may hand an event to with `handler: name`,
	// backed by st. Nil: none. The names imbot gives its own handlers (handoff, rating)
	// are taken.
	Handlers func(st Store) (rules.Handlers, error)
}

// Store is the bot's store as plugins get it: conversation state, handoffs, rooms,
// transcripts, tickets, unmatched messages and ratings. The stores of imbot (the *DB of store/sqlite and
// of store/postgres, and *store.Memory) have more; a plugin may look for it with a type
// assertion.
type Store interface {
	store.StateStore
	store.HandoffStore
	store.RoomStore
	handlers.TranscriptStore
	handlers.TicketStore
	handlers.UnmatchedStore
	handlers.RatingStore
}

// pluginSet is the plugins compiled into one imbot, by name.
type pluginSet struct {
	byName map[string]Plugin
	names  []string // sorted
}

// newPluginSet checks that the plugins have distinct names.
func newPluginSet(ps []Plugin) (pluginSet, error) {
	s := pluginSet{byName: map[string]Plugin{}}
	for _, p := range ps {
		switch {
		case strings.TrimSpace(p.Name) == "":
			return s, errors.New("plugins: a plugin has no name")
		case p.Funcs == nil && p.Handlers == nil:
			return s, fmt.Errorf("plugins: %s has neither functions nor handlers", p.Name)
		}
		if _, dup := s.byName[p.Name]; dup {
			return s, fmt.Errorf("plugins: two plugins are named %s", p.Name)
		}
		s.byName[p.Name] = p
	}
	s.names = slices.Sorted(maps.Keys(s.byName))
	return s, nil
}

// has reports whether a plugin of this name is compiled in.
func (s pluginSet) has(name string) bool {
	_, ok := s.byName[name]
	return ok
}

// list names the compiled-in plugins, for messages.
func (s pluginSet) list() string {
	if len(s.names) == 0 {
		return "(none)"
	}
	return strings.Join(s.names, ", ")
}

// build returns the rule functions and Go handlers of the named plugins, backed by st. Two
// plugins defining the same function or handler is an error, and so is a plugin handler
// named as one of imbot's.
func (s pluginSet) build(names []string, st Store) (rules.Funcs, rules.Handlers, error) {
	funcs, hs := rules.Funcs{}, rules.Handlers{}
	funcFrom, handlerFrom := map[string]string{}, map[string]string{}
	for _, name := range names {
		p, ok := s.byName[name]
		if !ok {
			return nil, nil, fmt.Errorf("plugins: unknown plugin %q; compiled in: %s", name, s.list())
		}
		if p.Funcs != nil {
			fs, err := p.Funcs(st)
			if err != nil {
				return nil, nil, fmt.Errorf("plugins: %s: %w", name, err)
			}
			for fn, f := range fs {
				if other, dup := funcFrom[fn]; dup && other != name {
					return nil, nil, fmt.Errorf("plugins: %s and %s both define the function %s", other, name, fn)
				}
				funcFrom[fn] = name
				funcs[fn] = f
			}
		}
		if p.Handlers != nil {
			ph, err := p.Handlers(st)
			if err != nil {
				return nil, nil, fmt.Errorf("plugins: %s: %w", name, err)
			}
			for hn, h := range ph {
				if _, own := builtinRuleHandlers()[hn]; own {
					return nil, nil, fmt.Errorf("plugins: %s defines the handler %s, which is imbot's own", name, hn)
				}
				if other, dup := handlerFrom[hn]; dup && other != name {
					return nil, nil, fmt.Errorf("plugins: %s and %s both define the handler %s", other, name, hn)
				}
				handlerFrom[hn] = name
				hs[hn] = h
			}
		}
	}
	return funcs, hs, nil
}

// all returns the functions and handlers of every compiled-in plugin, backed by st (a fresh
// memory store when nil): what check, test and chat register.
func (s pluginSet) all(st Store) (rules.Funcs, rules.Handlers, error) {
	if st == nil {
		st = &store.Memory{}
	}
	return s.build(s.names, st)
}

// loadConfig is loadConfig, then a check that the plugins the file enables are compiled in.
func (c *cli) loadConfig(path string) (*fileConfig, error) {
	fc, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, p := range fc.Plugins {
		if !c.plugins.has(p) {
			e := fc.pluginsAt
			e.msg = fmt.Sprintf("plugins: unknown plugin %q; compiled into this imbot: %s", p, c.plugins.list())
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return fc, nil
}
