package imbotcmd

import (
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
)

func TestDefaultConfigLoads(t *testing.T) {
	fc, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := fc.botConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listen) != 2 || cfg.IdleTimeout != 10*time.Minute || cfg.MaxMessageBytes != 16384 {
		t.Errorf("default config decoded as %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"unknown key with suggestion", "listen: []\nidentty: sip:bot@x\n", []string{"cfg.yaml:2:1: unknown key \"identty\"; did you mean \"identity\"?"}},
		{"nested unknown key", "typing:\n  delai: 1s\n", []string{"cfg.yaml:2:3: unknown key \"typing.delai\"; did you mean \"delay\"?"}},
		{"all errors at once", "bogus: 1\ntimeouts:\n  idle: soon\n", []string{"cfg.yaml:1:1: unknown key \"bogus\"", "cfg.yaml:3:9: timeouts.idle: \"soon\" is not a duration"}},
		{"bad value with position", "log:\n  level: loud\n", []string{"cfg.yaml:2:10: log.level: \"loud\": want debug, info, warn or error"}},
		{"bad listen", "listen: [\"127.0.0.1:5060\"]\n", []string{"listen: \"127.0.0.1:5060\": write a URL such as udp://"}},
		{"wrong type", "limits:\n  inbox: many\n", []string{"cannot unmarshal", "many"}},
		{"syntax", "listen: [\n", []string{"cfg.yaml:"}},
		{"password without registrar", "registration:\n  password_env: X\n", []string{"set registration.registrar too"}},
		{"negative connection bounds", "limits:\n  connections: -1\ntimeouts:\n  connection_idle: -1s\nhttp:\n  max_connections: -2\n",
			[]string{"limits.connections: -1: must be positive", "timeouts.connection_idle: -1s: must be positive",
				"http.max_connections: -2: must be positive"}},
		{"negative per-source limit", "limits:\n  per_source_rate: -1\n  per_source_burst: -5\n",
			[]string{"cfg.yaml:2:20: limits.per_source_rate: -1: want requests a second", "limits.per_source_burst: -5: must be positive"}},
		{"trust user without secret", "trust:\n  users:\n    - {username: alice, uri: \"sip:alice@example.com\"}\n",
			[]string{"cfg.yaml:3:5: trust.users: user \"alice\": set password_env"}},
		{"trust user with a bad URI", "trust:\n  users:\n    - {username: bob, uri: bob, ha1: abc}\n",
			[]string{"trust.users: user \"bob\": uri \"bob\" is not a SIP address"}},
		{"allow list with nobody verified", "access:\n  allow: [example.com]\n",
			[]string{"cfg.yaml:2:10: access.allow: the allow list admits verified senders only"}},
		// The handlers' sections, checked by their Validate methods.
		{"agent without sip:", "handoff:\n  agents:\n    - {uri: bob@example.com}\n",
			[]string{`cfg.yaml:3:5: handoff.agents: agent 1: URI: "bob@example.com" is not a SIP address`}},
		{"agent without a user", "handoff:\n  agents:\n    - {uri: \"sip:example.com\"}\n",
			[]string{`cfg.yaml:3:5: handoff.agents: agent 1: URI: "sip:example.com" is not a SIP address`}},
		{"agent listed twice", "handoff:\n  agents:\n    - {uri: \"sip:bob@example.com\"}\n    - {uri: \"sip:bob@example.com\"}\n",
			[]string{`cfg.yaml:3:5: handoff.agents: agent 2: "sip:bob@example.com" is listed twice`}},
		{"offer mode", "handoff:\n  offer_mode: every\n", []string{`cfg.yaml:2:15: handoff.offer_mode: "every": want one`}},
		{"negative every", "ratelimit:\n  every: -1s\n", []string{"cfg.yaml:2:10: ratelimit.every: -1s: must not be negative"}},
		{"negative burst", "ratelimit:\n  burst: -2\n", []string{"cfg.yaml:2:10: ratelimit.burst: -2: must not be negative"}},
		{"bad deny entry", "access:\n  deny: [\"*.*\"]\n", []string{`cfg.yaml:2:9: access.deny: "*.*": a wildcard entry is a domain`}},
		{"bad allow entry", "trust:\n  proxies: [10.0.0.1]\naccess:\n  allow: [\"a*b@example.com\"]\n",
			[]string{`cfg.yaml:4:10: access.allow: "a*b@example.com": '*' is allowed only`}},
		{"trust key typo", "trust:\n  proxys: [10.0.0.1]\n", []string{"cfg.yaml:2:3: unknown key \"trust.proxys\"; did you mean \"proxies\"?"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseConfig("cfg.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestConfigPasswordFromEnvironment(t *testing.T) {
	fc, err := parseConfig("cfg.yaml", []byte("registration:\n  registrar: sip:127.0.0.1\n  password_env: IMBOT_TEST_PW\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.botConfig(); err == nil || !strings.Contains(err.Error(), "IMBOT_TEST_PW is not set") {
		t.Errorf("missing variable: %v", err)
	}
	t.Setenv("IMBOT_TEST_PW", "s3cret")
	cfg, err := fc.botConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registration.Password != "s3cret" {
		t.Error("password not taken from the environment")
	}
}

func TestHandoffTextsFromConfig(t *testing.T) {
	fc, err := parseConfig("cfg.yaml", []byte("handoff:\n  texts:\n    ended: \"{agent} has left. How did we do, 1 to 5?\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fc.Handoff.Texts.Ended; got != "{agent} has left. How did we do, 1 to 5?" {
		t.Errorf("texts.ended = %q", got)
	}
	if _, err := parseConfig("cfg.yaml", []byte("handoff:\n  texts:\n    endd: x\n")); err == nil ||
		!strings.Contains(err.Error(), `did you mean "ended"`) {
		t.Errorf("a misspelt text key: %v", err)
	}
}

func TestLimitsFromConfig(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		ok   func(bot.Config) bool
	}{
		{"connection bounds", "limits:\n  connections: 10\ntimeouts:\n  connection_idle: 3m\n", func(c bot.Config) bool {
			return c.MaxConnections == 10 && c.ConnectionIdleTimeout == 3*time.Minute
		}},
		{"per-source limit", "limits:\n  per_source_rate: 2.5\n  per_source_burst: 20\n", func(c bot.Config) bool {
			return c.SourceLimit == bot.SourceLimit{Rate: 2.5, Burst: 20}
		}},
		{"per-source limit off by default", "", func(c bot.Config) bool { return c.SourceLimit == bot.SourceLimit{} }},
		{"trust", "trust:\n  proxies: [10.0.0.0/8]\n  realm: example.com\n  users:\n    - {username: alice, uri: \"sip:alice@example.com\", password_env: IMBOT_TEST_ALICE}\n    - {username: bob, uri: \"sip:bob@example.com\", ha1: 0123abcd}\n",
			func(c bot.Config) bool {
				return len(c.Trust.Proxies) == 1 && c.Trust.Proxies[0] == "10.0.0.0/8" && c.Trust.Realm == "example.com" &&
					len(c.Trust.Users) == 2 && c.Trust.Users[0] == bot.DigestUser{Username: "alice", URI: "sip:alice@example.com", Password: "pw from env"} &&
					c.Trust.Users[1] == bot.DigestUser{Username: "bob", URI: "sip:bob@example.com", HA1: "0123abcd"} && !c.Trust.Unverified
			}},
		{"unverified", "trust:\n  unverified: true\n", func(c bot.Config) bool { return c.Trust.Unverified }},
		{"keyboard refresh", "typing:\n  keyboard_refresh: 3s\n", func(c bot.Config) bool { return c.Typing.RefreshMS == 3*time.Second }},
		{"keyboard refresh by its former name", "typing:\n  refresh_ms: 2s\n", func(c bot.Config) bool { return c.Typing.RefreshMS == 2*time.Second }},
	}
	t.Setenv("IMBOT_TEST_ALICE", "pw from env")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc, err := parseConfig("cfg.yaml", []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := fc.botConfig()
			if err != nil {
				t.Fatal(err)
			}
			if !c.ok(cfg) {
				t.Errorf("decoded as %+v", cfg)
			}
		})
	}
}

// TestTrustPasswordFromEnvironment: a digest user's password comes from the environment,
// and a variable that is not set is an error that names it.
func TestTrustPasswordFromEnvironment(t *testing.T) {
	fc, err := parseConfig("cfg.yaml", []byte("trust:\n  users:\n    - {username: carol, uri: \"sip:carol@example.com\", password_env: IMBOT_TEST_UNSET_PW}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.botConfig(); err == nil || !strings.Contains(err.Error(), "IMBOT_TEST_UNSET_PW is not set") {
		t.Fatalf("err = %v, want one naming the unset variable", err)
	}
}

// TestHandoffRestartTextsFromConfig: every handoff text of the config file reaches the handoff,
// those said after a restart included.
func TestHandoffRestartTextsFromConfig(t *testing.T) {
	fc, err := parseConfig("cfg.yaml", []byte("handoff:\n  texts:\n    ended: bye\n    resumed: back\n    wait_resumed: still\n"+
		"    agent_resumed: again\n    offer_resumed: open\n    held: later\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := fc.Handoff.Texts.handoffTexts()
	want := handlers.HandoffTexts{Ended: "bye", Resumed: "back", WaitResumed: "still", AgentResumed: "again", OfferResumed: "open", Held: "later"}
	if got != want {
		t.Errorf("texts %+v, want %+v", got, want)
	}
}

// TestConfigPostgresStore: store.driver postgres takes its DSN from the environment variable
// named by store.dsn_env (IMBOT_POSTGRES_DSN by default), never from the file.
func TestConfigPostgresStore(t *testing.T) {
	tests := map[string]struct {
		yaml string
		env  map[string]string
		err  string // of parseConfig, else of postgresDSN
		dsn  string
	}{
		"default variable": {yaml: "store: {driver: postgres}", env: map[string]string{"IMBOT_POSTGRES_DSN": "postgres://a@h/db"},
			dsn: "postgres://a@h/db"},
		"own variable": {yaml: "store: {driver: postgres, dsn_env: HELPDESK_DB}", env: map[string]string{"HELPDESK_DB": "host=/run/postgresql dbname=imbot"},
			dsn: "host=/run/postgresql dbname=imbot"},
		"variable not set": {yaml: "store: {driver: postgres, dsn_env: IMBOT_TEST_NO_SUCH_DSN}",
			err: "the environment variable IMBOT_TEST_NO_SUCH_DSN is not set"},
		"default variable not set": {yaml: "store: {driver: postgres}", env: map[string]string{"IMBOT_POSTGRES_DSN": ""},
			err: "IMBOT_POSTGRES_DSN is not set"},
		"a DSN in the file":     {yaml: "store: {driver: postgres, dsn: postgres://a@h/db}", err: `unknown key "store.dsn"`},
		"a DSN in dsn_env":      {yaml: "store: {driver: postgres, dsn_env: \"postgres://a@h/db\"}", err: "want the name of an environment variable"},
		"path with postgres":    {yaml: "store: {driver: postgres, path: imbot.db}", err: "store.path: is the SQLite file"},
		"dsn_env without it":    {yaml: "store: {driver: sqlite, dsn_env: X}", err: "store.dsn_env: is for store.driver postgres"},
		"sqlite needs no DSN":   {yaml: "store: {driver: sqlite}"},
		"unknown driver listed": {yaml: "store: {driver: mysql}", err: "want sqlite, memory or postgres"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fc, err := parseConfig("cfg.yaml", []byte(tt.yaml+"\n"))
			if err == nil {
				var dsn string
				dsn, err = fc.postgresDSN()
				if err == nil && dsn != tt.dsn {
					t.Errorf("DSN = %q, want %q", dsn, tt.dsn)
				}
			}
			if tt.err == "" {
				if err != nil {
					t.Errorf("error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error = %v, want one containing %q", err, tt.err)
			}
		})
	}
}
