package netguard_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/internal/netguard"
)

// deadline is how long a test waits for any one thing; waiting ends as soon as it happens.
const deadline = 10 * time.Second

// scripted is a listener whose Accept returns the errors it is given, then connections.
type scripted struct {
	errs   chan error
	conns  chan net.Conn
	closed chan struct{}
}

func newScripted(errs ...error) *scripted {
	l := &scripted{errs: make(chan error, len(errs)), conns: make(chan net.Conn, 1), closed: make(chan struct{})}
	for _, err := range errs {
		l.errs <- err
	}
	return l
}

func (l *scripted) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *scripted) Close() error   { close(l.closed); return nil }
func (l *scripted) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func TestAcceptRetriesErrors(t *testing.T) {
	cases := []struct {
		name string
		errs []error
	}{
		{"too many open files", []error{acceptErr(syscall.EMFILE)}},
		{"file table full, three times", []error{acceptErr(syscall.ENFILE), acceptErr(syscall.ENFILE), acceptErr(syscall.ENFILE)}},
		{"no buffer space", []error{acceptErr(syscall.ENOBUFS)}},
		{"aborted", []error{acceptErr(syscall.ECONNABORTED)}},
		{"firewall", []error{acceptErr(syscall.EPERM)}},
		{"timeout", []error{timeoutErr{}}},
		{"unknown", []error{errors.New("something else")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inner := newScripted(c.errs...)
			client, server := net.Pipe()
			defer client.Close()
			inner.conns <- server
			ln := netguard.NewListener(inner, 0, nil)
			defer ln.Close()
			got, err := ln.Accept()
			if err != nil {
				t.Fatalf("Accept returned %v; want it retried", err)
			}
			defer got.Close()
			if ln.Open() != 1 {
				t.Errorf("Open = %d, want 1", ln.Open())
			}
		})
	}
}

func TestAcceptEndsWhenClosed(t *testing.T) {
	errs := make([]error, 50) // a pause of a second at the end: Close must cut it short
	for i := range errs {
		errs[i] = acceptErr(syscall.EMFILE)
	}
	ln := netguard.NewListener(newScripted(errs...), 0, nil)
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(deadline):
		t.Fatal("Accept still pausing after Close")
	}
}

func TestLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := netguard.NewListener(inner, 2, nil)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", ln.Addr().String(), deadline)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(deadline):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	dial()
	dial()
	first, _ := next(), next()
	// The third is closed at once: its read ends (or even its dial, when the reset comes
	// first).
	if over, err := net.DialTimeout("tcp", ln.Addr().String(), deadline); err == nil {
		defer over.Close()
		_ = over.SetReadDeadline(time.Now().Add(deadline))
		if _, err := over.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("a connection past the limit: read %v, want it closed", err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a connection past the limit was returned: %v", c.RemoteAddr())
	default:
	}
	if ln.Open() != 2 {
		t.Errorf("Open = %d, want 2", ln.Open())
	}
	// A closed connection makes room, once.
	first.Close()
	first.Close()
	if ln.Open() != 1 {
		t.Errorf("Open after a close = %d, want 1", ln.Open())
	}
	c := dial()
	got := next()
	if got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("accepted %v, want %v", got.RemoteAddr(), c.LocalAddr())
	}
	if _, err := fmt.Fprint(c, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(got, make([]byte, 1)); err != nil {
		t.Fatalf("the connection let in after a close: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
