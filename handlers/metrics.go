package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// Metrics counts what the bot does, for Prometheus. All metrics are registered on the
// registry given to NewMetrics, never on the global one, so several bots (and tests) in one
// process keep separate counts.
//
// Metrics is also the bot's bot.Observer: set bot.Config.Observer to it. Messages out, typing
// and SIP responses are counted there, on the wire, and only there: the middleware counts
// what comes in, answers and latency.
//
// The metrics, all prefixed imbot_:
//
//	messages_in_total{mode}          messages received, by conversation mode (page, session)
//	messages_out_total{mode}         text messages the peers accepted (see ObserveMessageOut)
//	rule_hits_total{rule}            events answered, by rule or handler name (see bot.SetAnswerer)
//	no_match_total                   messages nothing matched (see bot.SetNoMatch)
//	handler_duration_seconds{kind}   time the rest of the chain took, by event kind
//	active_sessions                  conversations open now
//	sip_responses_total{code}        SIP responses, by status code (see ObserveSIPResponse)
//	typing_sent_total                typing indications the peers accepted (see ObserveTypingSent)
//	handoffs_total{outcome}          handoffs, by outcome (see ObserveHandoff)
//	handoff_wait_seconds             how long accepted handoffs waited for their agent
//	ratings_total{score}             satisfaction ratings stored, by score (see Ratings): CSAT
//	                                 is the share of the top two scores
//	handler_errors_total{kind}       events whose handler returned an error, by event kind
//
// and, once TrackRegistration is called, read from the bot at every scrape:
//
//	registered                       1 while the registrar holds the bot's binding, else 0
//	registration_info{state,error}   1, labelled with the sign-in state and its last error
//	registration_expiry_timestamp_seconds  when the binding lapses (while registered)
type Metrics struct {
	reg        *prometheus.Registry
	in, out    *prometheus.CounterVec
	ruleHits   *prometheus.CounterVec
	noMatch    prometheus.Counter
	latency    *prometheus.HistogramVec
	active     prometheus.Gauge
	sip        *prometheus.CounterVec
	typingSent prometheus.Counter
	handoffs   *prometheus.CounterVec
	wait       prometheus.Histogram
	ratings    *prometheus.CounterVec
	errors     *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg. It fails when reg already has
// metrics of the same names.
func NewMetrics(reg *prometheus.Registry) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("handlers: NewMetrics needs a registry (prometheus.NewRegistry())")
	}
	const ns = "imbot"
	m := &Metrics{
		reg: reg,
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_in_total",
			Help: "Messages received, by conversation mode."}, []string{"mode"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_out_total",
			Help: "Text messages the peers accepted, by conversation mode; a text split to fit UDP counts once per message."}, []string{"mode"}),
		ruleHits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "rule_hits_total",
			Help: "Events answered, by rule or handler."}, []string{"rule"}),
		noMatch: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "no_match_total",
			Help: "Messages no rule matched."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "handler_duration_seconds",
			Help:    "Time spent handling an event, by event kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"kind"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "active_sessions",
			Help: "Conversations open now."}),
		sip: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sip_responses_total",
			Help: "SIP responses, by status code."}, []string{"code"}),
		typingSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "typing_sent_total",
			Help: "Typing indications the peers accepted."}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "handoff_wait_seconds",
			Help:    "How long accepted handoffs waited for their agent, from the request to the acceptance.",
			Buckets: []float64{5, 15, 30, 60, 120, 300, 600, 1800}}),
		ratings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ratings_total",
			Help: "Satisfaction ratings stored, by score."}, []string{"score"}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handoffs_total",
			Help: "Handoffs to a human agent, by outcome."}, []string{"outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handler_errors_total",
			Help: "Events whose handler failed, by event kind."}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.in, m.out, m.ruleHits, m.noMatch, m.latency, m.active, m.sip, m.typingSent, m.handoffs, m.wait, m.ratings, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("handlers: registering metrics: %w", err)
		}
	}
	for _, mode := range []bot.Mode{bot.ModePage, bot.ModeSession} {
		m.in.WithLabelValues(mode.String())
		m.out.WithLabelValues(mode.String())
	}
	return m, nil
}

// Registry returns the registry the metrics are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Middleware returns the middleware that counts events, answers and errors and times the
// rest of the chain. Place it near the front of the chain. Replies and typing are counted by
// the bot (see ObserveMessageOut and ObserveTypingSent), once per request on the wire.
func (m *Metrics) Middleware() bot.Middleware {
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			c, _ := convOf(ev)
			mode := c.Mode.String()
			switch ev.Kind {
			case bot.EventMessage:
				m.in.WithLabelValues(mode).Inc()
			case bot.EventSessionStart:
				m.active.Inc()
			case bot.EventSessionEnd:
				m.active.Dec()
			}
			w = recording(w)
			start := time.Now()
			err := next.Handle(ctx, w, ev)
			m.latency.WithLabelValues(ev.Kind.String()).Observe(time.Since(start).Seconds())
			if err != nil {
				m.errors.WithLabelValues(ev.Kind.String()).Inc()
			}
			for _, n := range bot.AnswerersOf(w) {
				m.ruleHits.WithLabelValues(n).Inc()
			}
			if bot.NoMatchOf(w) && ev.Kind == bot.EventMessage {
				m.noMatch.Inc()
			}
			return err
		})
	}
}

// ObserveSIPResponse counts one SIP response, sent or received, by status code. The runtime
// does not call it by itself: wire it to the bot's SIP layer where responses are sent.
func (m *Metrics) ObserveSIPResponse(code int) {
	m.sip.WithLabelValues(strconv.Itoa(code)).Inc()
}

// ObserveTypingSent counts one typing indication a peer accepted. The bot calls it (as its
// bot.Config.Observer) once per indication on the wire, whoever asked for it: its own
// automatic typing, Responder.Typing or bot.WithTyping.
func (m *Metrics) ObserveTypingSent() { m.typingSent.Inc() }

// ObserveHandoff counts one handoff event by outcome: "requested", "accepted", "done",
// "timeout", "unavailable", "user_left", "escalated" (an offer moved on to another agent).
// *Metrics is a HandoffObserver.
func (m *Metrics) ObserveHandoff(outcome string) { m.handoffs.WithLabelValues(outcome).Inc() }

// ObserveHandoffWait records how long an accepted handoff waited for its agent; *Metrics
// is a HandoffWaitObserver.
func (m *Metrics) ObserveHandoffWait(d time.Duration) { m.wait.Observe(d.Seconds()) }

// Ratings returns s counting every rating it stores in ratings_total{score}: pass it to
// Rating.
func (m *Metrics) Ratings(s RatingStore) RatingStore { return countedRatings{RatingStore: s, m: m} }

// countedRatings is a RatingStore that counts what it stores.
type countedRatings struct {
	RatingStore
	m *Metrics
}

func (c countedRatings) AddRating(ctx context.Context, r store.Rating) error {
	if err := c.RatingStore.AddRating(ctx, r); err != nil {
		return err
	}
	c.m.ratings.WithLabelValues(strconv.Itoa(r.Score)).Inc()
	return nil
}

// ObserveMessageOut counts one text message a peer accepted, in the given mode. The bot calls
// it (as its bot.Config.Observer) for every message on the wire: replies, apologies,
// relayed handoff messages and proactive notices; a text split into several messages to fit
// UDP counts once per message.
func (m *Metrics) ObserveMessageOut(mode bot.Mode) { m.out.WithLabelValues(mode.String()).Inc() }

// RegistrationSource reports the bot's sign-in; *bot.Bot is one.
type RegistrationSource interface {
	Registration() (bot.Registration, <-chan struct{})
}

// TrackRegistration registers the registration gauges, read from src at every scrape:
// imbot_registered (1 while bound, else 0), imbot_registration_info{state,error} with the
// last error of a failed or retried attempt, and imbot_registration_expiry_timestamp_seconds
// while bound. A bot without a registrar (bot.RegOff) reports none of them. Call it once.
func (m *Metrics) TrackRegistration(src RegistrationSource) error {
	if err := m.reg.Register(&registrationCollector{src: src}); err != nil {
		return fmt.Errorf("handlers: registering the registration metrics: %w", err)
	}
	return nil
}

var (
	registeredDesc = prometheus.NewDesc("imbot_registered",
		"1 while the registrar holds the bot's binding, else 0.", nil, nil)
	registrationInfoDesc = prometheus.NewDesc("imbot_registration_info",
		"The bot's sign-in state and the last error of a failed or retried attempt (empty when none).",
		[]string{"state", "error"}, nil)
	registrationExpiryDesc = prometheus.NewDesc("imbot_registration_expiry_timestamp_seconds",
		"When the bot's binding at the registrar lapses, in Unix seconds (while registered).", nil, nil)
)

// registrationCollector reads the registration at scrape time, so that only the current
// error is exported, never a series per error ever seen.
type registrationCollector struct {
	src RegistrationSource
}

func (c *registrationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- registeredDesc
	ch <- registrationInfoDesc
	ch <- registrationExpiryDesc
}

func (c *registrationCollector) Collect(ch chan<- prometheus.Metric) {
	st, _ := c.src.Registration()
	if st.State == bot.RegOff {
		return
	}
	bound := 0.0
	if st.State == bot.RegRegistered {
		bound = 1
		ch <- prometheus.MustNewConstMetric(registrationExpiryDesc, prometheus.GaugeValue, float64(st.Expires.Unix()))
	}
	ch <- prometheus.MustNewConstMetric(registeredDesc, prometheus.GaugeValue, bound)
	ch <- prometheus.MustNewConstMetric(registrationInfoDesc, prometheus.GaugeValue, 1, st.State.String(), st.Reason)
}

// Handler returns the HTTP handler of the metrics; see MetricsHandler.
func (m *Metrics) Handler(ready func() error) http.Handler { return MetricsHandler(m.reg, ready) }

// MetricsHandler serves the operator's HTTP endpoints:
//
//	/metrics   the metrics of g in the Prometheus text format
//	/healthz   200 "ok" while the process serves HTTP (liveness)
//	/readyz    200 "ready" when ready returns nil, else 503 with the error's text
//	           (readiness: for example, registered with the registrar)
//
// A nil ready means always ready. Other paths get 404.
func MetricsHandler(g prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil {
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
