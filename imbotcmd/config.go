package imbotcmd

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/internal/suggest"
)

// defaultConfig is what `imbot run` uses without --config: no file, no server needed.
//
//go:embed default.yaml
var defaultConfig []byte

// maxConfigBytes bounds a config file.
const maxConfigBytes = 1 << 20

// fileConfig is imbot.yaml. Every key is documented in default.yaml and the README.
type fileConfig struct {
	Listen        []string `yaml:"listen"`
	Identity      string   `yaml:"identity"`
	DisplayName   string   `yaml:"display_name"`
	Advertise     string   `yaml:"advertise"`
	OutboundProxy string   `yaml:"outbound_proxy"`
	Registration  struct {
		Registrar    string        `yaml:"registrar"`
		Username     string        `yaml:"username"`
		PasswordEnv  string        `yaml:"password_env"`
		Expires      time.Duration `yaml:"expires"`
		BindingCheck time.Duration `yaml:"binding_check"`
	} `yaml:"registration"`
	Trust struct {
		Proxies []string `yaml:"proxies"`
		Users   []struct {
			Username    string `yaml:"username"`
			URI         string `yaml:"uri"`
			PasswordEnv string `yaml:"password_env"`
			HA1         string `yaml:"ha1"`
		} `yaml:"users"`
		Realm      string `yaml:"realm"`
		Unverified bool   `yaml:"unverified"`
	} `yaml:"trust"`
	Typing struct {
		Off             bool          `yaml:"off"`
		Delay           time.Duration `yaml:"delay"`
		KeyboardRefresh time.Duration `yaml:"keyboard_refresh"`
		// RefreshMS is the former name of keyboard_refresh ("ms" for Microsoft, not
		// milliseconds), still read.
		RefreshMS time.Duration `yaml:"refresh_ms"`
		Refresh   time.Duration `yaml:"refresh"`
		AutoMax   time.Duration `yaml:"auto_max"`
	} `yaml:"typing"`
	Timeouts struct {
		Idle           time.Duration `yaml:"idle"`
		ConnectionIdle time.Duration `yaml:"connection_idle"`
		Request        time.Duration `yaml:"request"`
		Event          time.Duration `yaml:"event"`
		Shutdown       time.Duration `yaml:"shutdown"`
	} `yaml:"timeouts"`
	Limits struct {
		Inbox             int           `yaml:"inbox"`
		Workers           int           `yaml:"workers"`
		Queued            int           `yaml:"queued"`
		QueueDelay        time.Duration `yaml:"queue_delay"`
		Sessions          int           `yaml:"sessions"`
		PageConversations int           `yaml:"page_conversations"`
		MessageBytes      int           `yaml:"message_bytes"`
		Connections       int           `yaml:"connections"`
		PerSourceRate     float64       `yaml:"per_source_rate"`
		PerSourceBurst    int           `yaml:"per_source_burst"`
	} `yaml:"limits"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	TLS struct {
		Cert     string `yaml:"cert"`
		Key      string `yaml:"key"`
		ClientCA string `yaml:"client_ca"`
	} `yaml:"tls"`
	Rules   []string       `yaml:"rules"`
	Vars    map[string]any `yaml:"vars"`
	Plugins []string       `yaml:"plugins"`
	Store   struct {
		Driver string `yaml:"driver"`
		Path   string `yaml:"path"`
		DSNEnv string `yaml:"dsn_env"`
	} `yaml:"store"`
	Cluster struct {
		Address string        `yaml:"address"`
		Lease   time.Duration `yaml:"lease"`
	} `yaml:"cluster"`
	HTTP struct {
		Listen         string        `yaml:"listen"`
		IdleTimeout    time.Duration `yaml:"idle_timeout"`
		MaxConnections int           `yaml:"max_connections"`
	} `yaml:"http"`
	Access struct {
		Allow []string `yaml:"allow"`
		Deny  []string `yaml:"deny"`
	} `yaml:"access"`
	RateLimit struct {
		Every time.Duration `yaml:"every"`
		Burst int           `yaml:"burst"`
		Reply string        `yaml:"reply"`
	} `yaml:"ratelimit"`
	Handoff struct {
		Agents []struct {
			URI  string `yaml:"uri"`
			Name string `yaml:"name"`
			Max  int    `yaml:"max"`
		} `yaml:"agents"`
		AnswerTimeout time.Duration `yaml:"answer_timeout"`
		OfferTimeout  time.Duration `yaml:"offer_timeout"` // 0: the default; negative: offers never move on
		OfferMode     string        `yaml:"offer_mode"`    // one (default) or all
		Triggers      []string      `yaml:"triggers"`
		NoMatchLimit  int           `yaml:"no_match_limit"`
		Texts         handoffTexts  `yaml:"texts"`
	} `yaml:"handoff"`
	Web webSection `yaml:"web"`

	file string // where it was read from, "" for the embedded default
	// pluginsAt is where the plugins list is, for the errors about the plugins it names
	// (which depend on the binary: see cli.loadConfig).
	pluginsAt configError
}

// handoffTexts are the handoff's messages, as the config file names them; empty ones keep
// the defaults. Placeholders: {user} {uri} {agent} {id} {text} {ticket} {transcript} {done}
// {guest}.
type handoffTexts struct {
	Searching      string `yaml:"searching"`
	StillWaiting   string `yaml:"still_waiting"`
	Connected      string `yaml:"connected"`
	FromAgent      string `yaml:"from_agent"`
	Ended          string `yaml:"ended"`
	NoAgent        string `yaml:"no_agent"`
	NoAgentLater   string `yaml:"no_agent_later"`
	Offer          string `yaml:"offer"`
	AgentConnected string `yaml:"agent_connected"`
	FromUser       string `yaml:"from_user"`
	AgentEnded     string `yaml:"agent_ended"`
	Withdrawn      string `yaml:"withdrawn"`
	Reoffered      string `yaml:"reoffered"`
	Taken          string `yaml:"taken"`
	UserLeft       string `yaml:"user_left"`
	AgentHelp      string `yaml:"agent_help"`
	FromGuest      string `yaml:"from_guest"`
	Resumed        string `yaml:"resumed"`
	WaitResumed    string `yaml:"wait_resumed"`
	AgentResumed   string `yaml:"agent_resumed"`
	OfferResumed   string `yaml:"offer_resumed"`
	Held           string `yaml:"held"`
}

// configError is one problem in a config file, at file:line:column.
type configError struct {
	file      string
	line, col int
	msg       string
}

func (e configError) Error() string {
	if e.line == 0 {
		return fmt.Sprintf("%s: %s", e.file, e.msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.file, e.line, e.col, e.msg)
}

// loadConfig reads a config file ("" for the embedded default) strictly: unknown keys, wrong
// types and bad values are all reported, each with its position.
func loadConfig(path string) (*fileConfig, error) {
	data, name := defaultConfig, "default config"
	if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if st.Size() > maxConfigBytes {
			return nil, fmt.Errorf("%s: %d bytes; a config file is at most %d", path, st.Size(), maxConfigBytes)
		}
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		name = path
	}
	cfg, err := parseConfig(name, data)
	if err != nil {
		return nil, err
	}
	if path != "" {
		cfg.file = path
		cfg.resolvePaths(filepath.Dir(path))
	}
	return cfg, nil
}

// resolvePaths makes the file paths of a config file relative to its own directory.
func (c *fileConfig) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Rules {
		abs(&c.Rules[i])
	}
	if c.Store.Path != ":memory:" {
		abs(&c.Store.Path)
	}
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	abs(&c.TLS.ClientCA)
}

func parseConfig(name string, data []byte) (*fileConfig, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, configError{file: name, msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	cfg := &fileConfig{}
	if len(root.Content) == 0 {
		return cfg, nil // an empty file: all defaults
	}
	doc := root.Content[0]
	var errs []error
	checkKeys(name, doc, reflect.TypeOf(*cfg), "", &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := doc.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				errs = append(errs, configError{file: name, msg: m})
			}
			return nil, errors.Join(errs...)
		}
		return nil, configError{file: name, msg: err.Error()}
	}
	cfg.pluginsAt.file = name
	if n := findKey(doc, "plugins"); n != nil {
		cfg.pluginsAt.line, cfg.pluginsAt.col = n.Line, n.Column
	}
	for _, c := range cfg.validate() {
		c.file = name
		if n := findKey(doc, c.key); n != nil {
			c.line, c.col = n.Line, n.Column
		}
		errs = append(errs, c.configError)
	}
	return cfg, errors.Join(errs...)
}

// checkKeys reports every mapping key that is not a field of t, with a suggestion.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	if t.Kind() == reflect.Slice {
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				checkKeys(file, c, t.Elem(), path, errs)
			}
		}
		return
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
		names = append(names, tag)
	}
	sort.Strings(names)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", path+k.Value)
			if s := suggest.Closest(k.Value, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += fmt.Sprintf("; known keys here: %s", strings.Join(names, ", "))
			}
			*errs = append(*errs, configError{file: file, line: k.Line, col: k.Column, msg: msg})
			continue
		}
		if ft == reflect.TypeOf(time.Duration(0)) && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			if _, err := time.ParseDuration(v.Value); err != nil {
				*errs = append(*errs, configError{file: file, line: v.Line, col: v.Column,
					msg: fmt.Sprintf("%s: %q is not a duration; write it like 30s, 10m or 1h", path+k.Value, v.Value)})
			}
		}
		checkKeys(file, v, ft, path+k.Value+".", errs)
	}
}

// findKey returns the key node at a dotted path, or nil.
func findKey(n *yaml.Node, path string) *yaml.Node {
	parts := strings.Split(path, ".")
	for i, p := range parts {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				if i == len(parts)-1 {
					return n.Content[j+1]
				}
				next = n.Content[j+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return nil
}

// defaultDSNEnv is the environment variable holding the PostgreSQL DSN when store.dsn_env
// is left out.
const defaultDSNEnv = "IMBOT_POSTGRES_DSN"

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// clustered reports whether this instance runs a helpdesk with other instances: a handoff
// on a store they share. One instance leads it (handlers.Leader).
func (c *fileConfig) clustered() bool {
	return c.Store.Driver == "postgres" && len(c.Handoff.Agents) > 0
}

// clusterAddress returns where the other instances reach this one: cluster.address, else
// the first listen address when it names one IP (with the advertise host when it does not).
func (c *fileConfig) clusterAddress() (string, error) {
	if a := c.Cluster.Address; a != "" {
		var u sip.Uri
		if err := sip.ParseUri(a, &u); err != nil || u.Scheme != "sip" || u.Host == "" || u.User != "" || strings.ContainsAny(a, "\r\n") {
			return "", fmt.Errorf("%q: want this instance's SIP address as the other instances reach it, such as sip:10.0.0.11:5060", a)
		}
		return a, nil
	}
	want := errors.New("set it to this instance's SIP address as the other instances reach it, such as sip:10.0.0.11:5060: " +
		"a helpdesk on several instances needs it (store.driver postgres with handoff.agents)")
	if len(c.Listen) == 0 {
		return "", want
	}
	scheme, hostport, ok := strings.Cut(c.Listen[0], "://")
	if !ok {
		scheme, hostport = "udp", c.Listen[0]
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port == "0" || (scheme != "udp" && scheme != "tcp") {
		return "", want
	}
	if ip, err := netip.ParseAddr(host); err != nil || ip.IsUnspecified() {
		if c.Advertise == "" {
			return "", want
		}
		host = c.Advertise
		if h, _, err := net.SplitHostPort(c.Advertise); err == nil {
			host = h
		}
	}
	a := "sip:" + net.JoinHostPort(host, port)
	if scheme == "tcp" {
		a += ";transport=tcp"
	}
	return a, nil
}

// postgresDSN returns the DSN of the postgres store from the environment variable named by
// store.dsn_env, or an error saying what to set. It is "" for the other drivers.
func (c *fileConfig) postgresDSN() (string, error) {
	if c.Store.Driver != "postgres" {
		return "", nil
	}
	env := cmp.Or(c.Store.DSNEnv, defaultDSNEnv)
	dsn := os.Getenv(env)
	if dsn == "" {
		return "", fmt.Errorf("store.dsn_env: the environment variable %s is not set: store.driver is postgres, and %s must hold the DSN of its database, such as postgres://imbot@db.example.com:5432/imbot", env, env)
	}
	return dsn, nil
}

// keyError is a bad value at a dotted key path.
type keyError struct {
	configError
	key string
}

func (c *fileConfig) validate() []keyError {
	var errs []keyError
	bad := func(key, format string, args ...any) {
		errs = append(errs, keyError{configError: configError{msg: key + ": " + fmt.Sprintf(format, args...)}, key: key})
	}
	for _, l := range c.Listen {
		scheme, _, ok := strings.Cut(l, "://")
		switch {
		case !ok:
			bad("listen", "%q: write a URL such as udp://127.0.0.1:5060 or tcp://127.0.0.1:5060", l)
		case scheme != "udp" && scheme != "tcp" && scheme != "tls" && scheme != "ws" && scheme != "wss":
			bad("listen", "%q: the transport must be udp, tcp, tls, ws or wss", l)
		}
	}
	if c.Identity != "" && !strings.HasPrefix(c.Identity, "sip:") && !strings.HasPrefix(c.Identity, "sips:") {
		bad("identity", "%q is not a SIP address; write it like sip:helpdesk@example.com", c.Identity)
	}
	if c.Registration.PasswordEnv != "" && c.Registration.Registrar == "" {
		bad("registration.password_env", "set registration.registrar too, or remove the password")
	}
	for i, u := range c.Trust.Users {
		switch {
		case u.Username == "":
			bad("trust.users", "user %d has no username", i+1)
		case !strings.HasPrefix(u.URI, "sip:") && !strings.HasPrefix(u.URI, "sips:"):
			bad("trust.users", "user %q: uri %q is not a SIP address such as sip:alice@example.com", u.Username, u.URI)
		case (u.PasswordEnv == "") == (u.HA1 == ""):
			bad("trust.users", "user %q: set password_env (the environment variable holding the password) or ha1, not both", u.Username)
		}
	}
	if len(c.Access.Allow) > 0 && len(c.Trust.Proxies) == 0 && len(c.Trust.Users) == 0 {
		bad("access.allow", "the allow list admits verified senders only, and without trust.proxies or trust.users "+
			"nobody is verified, so it would refuse everyone: set one of them, or remove the allow list")
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	for key, v := range map[string]time.Duration{"limits.queue_delay": c.Limits.QueueDelay,
		"timeouts.connection_idle": c.Timeouts.ConnectionIdle, "http.idle_timeout": c.HTTP.IdleTimeout,
		"typing.auto_max": c.Typing.AutoMax} {
		if v < 0 {
			bad(key, "%v: must be positive (or left out for the default)", v)
		}
	}
	for key, v := range map[string]int{"limits.inbox": c.Limits.Inbox, "limits.workers": c.Limits.Workers,
		"limits.queued": c.Limits.Queued, "limits.sessions": c.Limits.Sessions,
		"limits.page_conversations": c.Limits.PageConversations, "limits.message_bytes": c.Limits.MessageBytes,
		"limits.connections": c.Limits.Connections, "limits.per_source_burst": c.Limits.PerSourceBurst,
		"http.max_connections": c.HTTP.MaxConnections} {
		if v < 0 {
			bad(key, "%d: must be positive (or left out for the default)", v)
		}
	}
	if r := c.Limits.PerSourceRate; !(r >= 0) || math.IsInf(r, 1) {
		bad("limits.per_source_rate", "%v: want requests a second, such as 50 (0: no limit)", r)
	}
	switch c.Store.Driver {
	case "", "sqlite", "memory", "postgres":
	default:
		bad("store.driver", "%q: want sqlite, memory or postgres", c.Store.Driver)
	}
	switch {
	case c.Store.Driver == "postgres" && c.Store.Path != "":
		bad("store.path", "is the SQLite file; the postgres driver reads its DSN from the environment variable named by store.dsn_env (default %s): remove store.path", defaultDSNEnv)
	case c.Store.Driver != "postgres" && c.Store.DSNEnv != "":
		bad("store.dsn_env", "is for store.driver postgres")
	case c.Store.DSNEnv != "" && !envName.MatchString(c.Store.DSNEnv):
		bad("store.dsn_env", "%q: want the name of an environment variable, such as %s (the DSN itself never goes in the file)", c.Store.DSNEnv, defaultDSNEnv)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "set both cert and key")
	}
	if c.Cluster.Lease < 0 {
		bad("cluster.lease", "%v: must be positive (or left out for the default)", c.Cluster.Lease)
	}
	if c.Cluster.Address != "" || c.clustered() {
		if c.Store.Driver != "postgres" {
			bad("cluster", "is for instances that share a store: set store.driver to postgres")
		} else if _, err := c.clusterAddress(); err != nil {
			bad("cluster.address", "%v", err)
		}
	}
	for _, l := range c.Listen {
		if (strings.HasPrefix(l, "tls://") || strings.HasPrefix(l, "wss://")) && c.TLS.Cert == "" {
			bad("listen", "%q needs tls.cert and tls.key", l)
		}
	}
	fieldErrors(handlers.AccessConfig{Allow: c.Access.Allow, Deny: c.Access.Deny}.Validate(), "access",
		map[string]string{"Allow": "access.allow", "Deny": "access.deny"}, bad)
	if len(c.Handoff.Agents) > 0 { // without agents there is no handoff
		fieldErrors(c.handoffConfig().Validate(), "handoff", map[string]string{"Agents": "handoff.agents"}, bad)
	}
	if _, err := handlers.ParseOfferMode(c.Handoff.OfferMode); err != nil {
		bad("handoff.offer_mode", "%v", err)
	}
	fieldErrors(handlers.RateLimitConfig{Every: c.RateLimit.Every, Burst: c.RateLimit.Burst}.Validate(), "ratelimit",
		map[string]string{"Every": "ratelimit.every", "Burst": "ratelimit.burst"}, bad)
	c.validateWeb(bad)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].key < errs[j].key })
	return errs
}

// fieldErrors reports with bad each error of a handlers config's Validate (err, joined with
// errors.Join), at the key that keys gives its field (*handlers.FieldError), else at section.
func fieldErrors(err error, section string, keys map[string]string, bad func(key, format string, args ...any)) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *handlers.FieldError
		if errors.As(e, &fe) {
			if key, ok := keys[fe.Field]; ok {
				bad(key, "%v", fe.Err)
				continue
			}
		}
		bad(section, "%v", e)
	}
}

// handoffConfig is the handoff section as the handoff takes it: its settings, without the
// bot's parts (Dialer, stores, observer, logger) that assemble adds. Triggers left out of the
// file stay nil, so that the handoff's default applies; an empty list means none.
func (c *fileConfig) handoffConfig() handlers.HandoffConfig {
	agents := make([]handlers.Agent, 0, len(c.Handoff.Agents))
	for _, ag := range c.Handoff.Agents {
		agents = append(agents, handlers.Agent{URI: ag.URI, Name: ag.Name, Max: ag.Max})
	}
	broadcast, _ := handlers.ParseOfferMode(c.Handoff.OfferMode) // validate reports a bad one
	return handlers.HandoffConfig{
		Agents: agents, AnswerTimeout: c.Handoff.AnswerTimeout, OfferTimeout: c.Handoff.OfferTimeout,
		Broadcast: broadcast, Triggers: c.Handoff.Triggers, NoMatchLimit: c.Handoff.NoMatchLimit,
		Texts: c.Handoff.Texts.handoffTexts(),
	}
}

// botConfig turns the file config into a bot.Config. Secrets come from the environment.
func (c *fileConfig) botConfig() (bot.Config, error) {
	cfg := bot.Config{
		Listen:                c.Listen,
		Identity:              c.Identity,
		DisplayName:           c.DisplayName,
		Advertise:             c.Advertise,
		OutboundProxy:         c.OutboundProxy,
		IdleTimeout:           c.Timeouts.Idle,
		ConnectionIdleTimeout: c.Timeouts.ConnectionIdle,
		RequestTimeout:        c.Timeouts.Request,
		EventTimeout:          c.Timeouts.Event,
		ShutdownTimeout:       c.Timeouts.Shutdown,
		InboxSize:             c.Limits.Inbox,
		MaxWorkers:            c.Limits.Workers,
		MaxQueued:             c.Limits.Queued,
		MaxQueueDelay:         c.Limits.QueueDelay,
		MaxSessions:           c.Limits.Sessions,
		MaxPageConversations:  c.Limits.PageConversations,
		MaxMessageBytes:       c.Limits.MessageBytes,
		MaxConnections:        c.Limits.Connections,
		SourceLimit:           bot.SourceLimit{Rate: c.Limits.PerSourceRate, Burst: c.Limits.PerSourceBurst},
		Typing: bot.TypingConfig{
			Off: c.Typing.Off, Delay: c.Typing.Delay, RefreshMS: cmp.Or(c.Typing.KeyboardRefresh, c.Typing.RefreshMS), Refresh: c.Typing.Refresh,
		},
		Registration: bot.RegistrationConfig{
			Registrar:    c.Registration.Registrar,
			Username:     c.Registration.Username,
			Expires:      c.Registration.Expires,
			BindingCheck: c.Registration.BindingCheck,
		},
	}
	if c.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
		if err != nil {
			return cfg, fmt.Errorf("tls: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if c.TLS.ClientCA != "" {
		pem, err := os.ReadFile(c.TLS.ClientCA)
		if err != nil {
			return cfg, fmt.Errorf("tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("tls.client_ca: %s holds no PEM certificate", c.TLS.ClientCA)
		}
		cfg.ClientTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cfg.Trust = bot.TrustConfig{Proxies: c.Trust.Proxies, Realm: c.Trust.Realm, Unverified: c.Trust.Unverified}
	for _, u := range c.Trust.Users {
		du := bot.DigestUser{Username: u.Username, URI: u.URI, HA1: u.HA1}
		if u.PasswordEnv != "" {
			pw, ok := os.LookupEnv(u.PasswordEnv)
			if !ok {
				return cfg, fmt.Errorf("trust.users: %s: the environment variable %s is not set", u.Username, u.PasswordEnv)
			}
			du.Password = pw
		}
		cfg.Trust.Users = append(cfg.Trust.Users, du)
	}
	if env := c.Registration.PasswordEnv; env != "" {
		pw, ok := os.LookupEnv(env)
		if !ok {
			return cfg, fmt.Errorf("registration.password_env: the environment variable %s is not set", env)
		}
		cfg.Registration.Password = pw
	}
	return cfg, nil
}
