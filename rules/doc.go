// Package rules answers instant messages from rules written in YAML, for people who are not
// Go programmers. A rule file looks like this:
//
//	version: 1
//	vars: {company: Contoso}             # constants, read as vars.company
//	rules:
//	  - name: greet
//	    on: session.start                # message (default), session.start, session.end, typing, idle
//	    reply: "Hi {{ sender.name }}! I am the {{ vars.company }} bot. Type 'help'."
//
//	  - name: reset-password
//	    description: Reset a forgotten password   # listed by the built-in help
//	    examples: ["I forgot my password"]
//	    match: ["* forgot * password*", "[please] reset [my] password"]
//	    typing: 800ms                    # or auto: per length, capped
//	    reply: "I can help with that. What is your username?"
//	    goto: ask-username               # the conversation state after this rule
//
//	  - name: username
//	    state: ask-username              # only in this state ("*": in every state)
//	    regex: '^(?P<user>[a-z0-9._-]{2,32})$'
//	    call: accounts.reset(match.user) # a Go function; its value is `result`
//	    set: {username: "{{ match.user }}"}
//	    reply: "Done, {{ match.user }}: {{ result }}"
//	    goto: start                      # back to the initial state
//
//	  - name: sorry
//	    fallback: true                   # when nothing else answered
//	    reply: ["Sorry?", "Could you rephrase? Type 'help' for topics."]
//
// # Matching
//
// A message event tries the rules in order: higher `priority` first, then file order
// (included files first). A rule applies when the conversation is in one of its states
// (rules without `state:` apply in the initial state "start"; rules on other events, and
// fallbacks without a state, apply in every state), when one of its `match` patterns or
// `regex`es matches, and when its `when` expression is true. The first rule that applies
// answers, unless it says `continue: true`, which lets the next one answer too. When none
// answers, the fallbacks of the current state are tried, then the global fallbacks; if
// still none answers, the event goes on to the next handler of the bot's chain.
//
// Wildcard patterns compare whole messages word by word, ignoring case, accents and
// punctuation: `*` is any words (or none), `{name}` captures one or more words as
// match.name, `word*` is a word prefix, `(a|b)` a choice and `[a]` an optional word.
// Unnamed stars are match.star1, match.star2, ... Regexes are RE2, case-insensitive,
// unanchored unless written with ^ and $; named groups are match.name and others
// match.group1, ...
//
// # Expressions
//
// `when`, `call` and the {{ }} parts of replies and `set` values use one expression language
// (github.com/expr-lang/expr), compiled and type-checked when the rules load. They see
// text, sender (uri, user, domain, name, verified), session (id, mode, turns, started),
// state, vars (the file's constants and the conversation's variables), match, now, event,
// typing, result, the functions help() and business_hours(spec[, timezone]), and the Go functions
// registered in Options.Funcs. A `set` value that is exactly one {{ expr }} keeps its type
// (a number stays a number); `set: {x: null}` forgets x.
//
// A rule that fires does, in order: call, set, goto, its replies (which see the new
// variables and state), its Go handler, and end.
//
// # Limits
//
// What one event may cost is bounded (Options.Limits): the text an evaluation builds, the
// time it loops, the number and size of the replies, and expr's memory budget of list
// elements. An event over a limit fails with an error wrapping ErrLimit, and the engine goes
// on with the next one; what is sure to go over a limit is refused when the rules load.
//
// # Loading and running
//
// Load and Check report every problem of every file at once, with file:line:column and a
// suggestion when one is likely. New returns an Engine; Engine.Middleware plugs it into a
// bot's chain, Engine.Reload and Engine.Watch swap in edited files atomically (a bad edit
// keeps the old rules), and Engine.Process says what the rules decide for an event without
// carrying it out. Outcomes are carried out in one place, Engine.Middleware: the
// conversation tests (ParseTestFile reads them; ruleshell.RunTestFiles and package rulestest
// run them) and the chat shell (package ruleshell) drive it with a bottest.Recorder as the
// Responder, and read the rules' decisions with WithOutcome.
//
// The complete reference of every key is in REFERENCE.md next to this file.
package rules
