// Package pgtest starts a throwaway PostgreSQL server for tests, as the interop tests start
// their own Kamailio: initdb into a temporary directory, postgres started on a free port of
// 127.0.0.1 (and a Unix socket inside the directory), databases created on demand, and
// everything stopped and removed at the end. Nothing is installed or configured system-wide,
// and a PostgreSQL service of the machine is neither needed nor touched.
//
// A test package starts one server in TestMain and creates a database per test:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }
//
//	func TestX(t *testing.T) {
//		dsn := server.Database(t) // skips when PostgreSQL is not installed
//		...
//	}
//
// The binaries are looked up in IMBOT_POSTGRES_BIN when it is set, else in the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout), then on PATH. When they are missing, tests skip, unless IMBOT_POSTGRES is
// "required" (CI sets it): then they fail. initdb refuses to run as root; run as root, the
// server runs as the "postgres" user (Debian's package creates it), or IMBOT_POSTGRES_USER.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is wrapped by the error of Start when the PostgreSQL binaries are not found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found")

// Required reports whether IMBOT_POSTGRES is "required": tests must fail, not skip, when
// PostgreSQL is missing.
func Required() bool { return os.Getenv("IMBOT_POSTGRES") == "required" }

// Server is a PostgreSQL server started by Start. Its superuser is "imbot", with trust
// authentication from loopback only.
type Server struct {
	dir    string // the temporary directory: data, socket and log
	bin    string // the directory of initdb and postgres
	port   int
	cred   *syscall.Credential // the user the server runs as; nil: this process's
	server *exec.Cmd           // the postmaster, while it runs
	exited chan error          // receives the postmaster's end
	admin  *pgx.Conn           // to the postgres database, for CREATE DATABASE
	next   atomic.Int64        // database names
	err    error               // why Database skips or fails, when Start failed
}

// BinDir returns the directory holding initdb and postgres: IMBOT_POSTGRES_BIN when it is set
// (and only it), else the newest /usr/lib/postgresql/<version>/bin, else the directory of
// initdb on PATH.
func BinDir() (string, error) {
	if d := os.Getenv("IMBOT_POSTGRES_BIN"); d != "" {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
		return "", fmt.Errorf("%w in IMBOT_POSTGRES_BIN=%s", ErrNotInstalled, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w in /usr/lib/postgresql/*/bin or on PATH; install them (Debian: apt-get install postgresql)", ErrNotInstalled)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start initializes a database cluster in a new temporary directory and starts a server on
// it, on a free port of 127.0.0.1. Stop it with Stop.
//
// The server is tuned for tests: fsync, full_page_writes and synchronous_commit are off (a
// crash of the machine may corrupt it, which does not matter for a throwaway server).
// settings ("name=value", such as "fsync=on") override these and set others.
func Start(ctx context.Context, settings ...string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if s.dir, err = os.MkdirTemp("", "imbot-pg-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	if os.Geteuid() == 0 {
		if err := s.dropRoot(); err != nil {
			return nil, err
		}
	}
	if err := s.mkdir(filepath.Join(s.dir, "sock")); err != nil {
		return nil, err
	}
	if err := s.run(ctx, "initdb", "-D", s.data(), "-U", "imbot", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	// A free port can be taken between the probe and the server's bind: try a few.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		args := []string{"-D", s.data(), "-p", strconv.Itoa(s.port), "-k", filepath.Join(s.dir, "sock"),
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200"}
		for _, kv := range settings {
			args = append(args, "-c", kv) // the last of a setting wins
		}
		if err = s.startServer(ctx, args); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// dropRoot makes the server run as an unprivileged user, since initdb and postgres refuse
// root, and gives it the temporary directory.
func (s *Server) dropRoot() error {
	name := cmpOr(os.Getenv("IMBOT_POSTGRES_USER"), "postgres")
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("pgtest: running as root, PostgreSQL must run as another user and %q does not exist (%w); create it, set IMBOT_POSTGRES_USER to another, or run the tests as a normal user", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	// No supplementary groups: root's are not the server's to keep.
	s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if err := os.Chown(s.dir, int(uid), int(gid)); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mkdir makes a directory the server's user owns.
func (s *Server) mkdir(d string) error {
	if err := os.Mkdir(d, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(d, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

func (s *Server) data() string    { return filepath.Join(s.dir, "data") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "server.log") }

// run runs one of the server's programs as the server's user; its error has the output,
// and the end of the server's log.
func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if s.cred != nil && strings.Contains(string(out), "ermission denied") {
			hint = fmt.Sprintf(" (the server runs as uid %d: it needs to reach %s; set TMPDIR to a directory it can reach)", s.cred.Uid, s.dir)
		}
		return fmt.Errorf("pgtest: %s %s: %w%s\n%s", prog, strings.Join(args, " "), err, hint, out)
	}
	return nil
}

// startServer runs postgres with args as a child of this process, not as a daemon (pg_ctl
// start would make one): when this process dies, even of a test timeout's panic, the kernel
// stops the server too (SIGQUIT: immediate shutdown). It returns once the server accepts
// connections, with s.admin connected to it.
func (s *Server) startServer(ctx context.Context, args []string) error {
	logf, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		logf.Close()
	}()
	for {
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			s.admin, s.server, s.exited = c, cmd, exited
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("pgtest: postgres %s: %v\nserver log:\n%s", strings.Join(args, " "), werr, s.logTail())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("pgtest: postgres did not accept connections in time (%w): %v\nserver log:\n%s", ctx.Err(), err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the end of the server's log.
func (s *Server) logTail() []byte {
	log, _ := os.ReadFile(s.logFile())
	if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return log
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN returns the URL of database name on the server, over TCP on 127.0.0.1.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("postgres://imbot@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// CreateDatabase creates a new, empty database and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test%d", s.next.Add(1))
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.DSN(name), nil
}

// Database creates a new, empty database for t and returns its DSN. When the server could
// not be started, t skips (PostgreSQL not installed, IMBOT_POSTGRES not "required") or fails.
// A nil *Server is one that was not started.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	if s == nil || s.admin == nil {
		var err error = ErrNotInstalled
		if s != nil && s.err != nil {
			err = s.err
		}
		skipOrFail(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := s.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// skipOrFail ends t for a server that could not be started: a skip when PostgreSQL is not
// installed and not required, else a failure.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && !Required() {
		t.Skipf("%v; set IMBOT_POSTGRES=required to make this a failure", err)
	}
	t.Fatal(err)
}

// New starts a server for one test, with settings as Start takes them, and stops it when the
// test ends. When the server cannot be started, t skips or fails as with Database.
func New(t testing.TB, settings ...string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, settings...)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (fast shutdown) and removes its directory.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s.admin != nil {
		_ = s.admin.Close(ctx)
		s.admin = nil
	}
	if s.server != nil {
		_ = s.server.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-s.exited:
		case <-ctx.Done():
			_ = s.server.Process.Kill()
			<-s.exited
		}
		s.server = nil
	}
	_ = os.RemoveAll(s.dir)
}

// Main is TestMain for a package whose tests use PostgreSQL: it starts a server into *s,
// runs the tests and stops it, and returns the exit code. A server that cannot be started
// makes Database skip or fail each test; when IMBOT_POSTGRES is "required" and the binaries
// are missing, Main fails at once.
func Main(m *testing.M, s **Server) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	srv, err := Start(ctx)
	cancel()
	if err != nil {
		if Required() {
			fmt.Fprintf(os.Stderr, "IMBOT_POSTGRES=required: %v\n", err)
			return 1
		}
		srv = &Server{err: err}
	}
	*s = srv
	code := m.Run()
	if srv.admin != nil {
		srv.Stop()
	}
	return code
}
