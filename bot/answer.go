package bot

import (
	"slices"
	"sync"
)

// AnswerRecorder is implemented by a Responder that records who answered its event: the
// names of the rules or handlers that answered, in order, and whether nothing matched. The
// bot's Responder and bottest.Recorder implement it; middleware read it once the rest of
// the chain has returned, as net/http middleware read the status of a ResponseWriter.
//
// Use SetAnswerer, SetNoMatch, AnswerersOf and NoMatchOf rather than a type assertion: they
// also reach a Responder wrapped by middleware (see Unwrap).
type AnswerRecorder interface {
	// SetAnswerer records that the rule or handler called name answered the event. Several
	// calls record several names, in order.
	SetAnswerer(name string)
	// Answerers returns the names recorded with SetAnswerer, in order.
	Answerers() []string
	// SetNoMatch records that nothing matched the event, even if a fallback replied.
	SetNoMatch()
	// NoMatch reports whether SetNoMatch was called.
	NoMatch() bool
}

// answerRecorder finds the AnswerRecorder of w: w itself, or the Responder it wraps, as
// found by following Unwrap methods (func() Responder). It returns nil when there is none.
func answerRecorder(w Responder) AnswerRecorder {
	for w != nil {
		if r, ok := w.(AnswerRecorder); ok {
			return r
		}
		u, ok := w.(interface{ Unwrap() Responder })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// SetAnswerer records on w that the rule or handler called name answered the event w
// responds to. A middleware that wraps a Responder should give its wrapper an Unwrap()
// Responder method, so that the call reaches the Responder that records. An empty name,
// or a w that records nothing, is ignored.
func SetAnswerer(w Responder, name string) {
	if name == "" {
		return
	}
	if r := answerRecorder(w); r != nil {
		r.SetAnswerer(name)
	}
}

// SetNoMatch records on w that nothing matched the event w responds to, even if a fallback
// replied. A w that records nothing ignores it.
func SetNoMatch(w Responder) {
	if r := answerRecorder(w); r != nil {
		r.SetNoMatch()
	}
}

// AnswerersOf returns the names recorded on w with SetAnswerer, in order; nil when w
// records nothing.
func AnswerersOf(w Responder) []string {
	if r := answerRecorder(w); r != nil {
		return r.Answerers()
	}
	return nil
}

// NoMatchOf reports whether SetNoMatch was recorded on w.
func NoMatchOf(w Responder) bool {
	if r := answerRecorder(w); r != nil {
		return r.NoMatch()
	}
	return false
}

// RecordsAnswers reports whether w, or a Responder it wraps, records who answered.
func RecordsAnswers(w Responder) bool { return answerRecorder(w) != nil }

// Answers is who answered one event: an AnswerRecorder to embed in a Responder. The zero
// value is ready to use; it is safe for concurrent use.
type Answers struct {
	mu      sync.Mutex
	names   []string
	noMatch bool
}

var _ AnswerRecorder = (*Answers)(nil)

// SetAnswerer implements AnswerRecorder.
func (a *Answers) SetAnswerer(name string) {
	if name == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.names = append(a.names, name)
}

// Answerers implements AnswerRecorder.
func (a *Answers) Answerers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.names)
}

// SetNoMatch implements AnswerRecorder.
func (a *Answers) SetNoMatch() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.noMatch = true
}

// NoMatch implements AnswerRecorder.
func (a *Answers) NoMatch() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.noMatch
}
