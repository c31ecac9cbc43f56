package interop

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file runs the external programs of the interop tests (Kamailio, baresip, linphonec)
// as child processes whose output a test can wait on line by line.

// toolTimeout bounds every wait on an external tool: generous, for loaded CI machines and
// -race. Waits end as soon as the awaited line or event arrives.
const toolTimeout = 20 * time.Second

// lineLog collects lines of text (a process's output, the bot's events) and lets a test
// wait for one. It is safe for concurrent use.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	wake    chan struct{} // closed and replaced when a line is added
}

// Write adds the complete lines in p; a trailing partial line waits for its end.
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		l.addLocked(strings.TrimRight(string(l.partial[:i]), "\r"))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// add appends one line.
func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(line)
}

func (l *lineLog) addLocked(line string) {
	l.lines = append(l.lines, line)
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// Len returns the number of complete lines so far: a mark to wait from.
func (l *lineLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Lines returns a copy of the lines from index from on.
func (l *lineLog) Lines(from int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from > len(l.lines) {
		return nil
	}
	return append([]string(nil), l.lines[from:]...)
}

// String returns everything, partial last line included.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n" + string(l.partial)
}

// find returns the first line at or after index from that matches, with its index, or -1.
func (l *lineLog) find(from int, match func(string) bool) (string, int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.lines); i++ {
		if match(l.lines[i]) {
			return l.lines[i], i, nil
		}
	}
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return "", -1, l.wake
}

// wait waits up to timeout for a line at or after index from that matches. It gives up
// early when stop is closed (the process exited), after one last look.
func (l *lineLog) wait(from int, timeout time.Duration, stop <-chan struct{}, match func(string) bool) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	stopped := false
	for {
		line, i, wake := l.find(from, match)
		if i >= 0 {
			return line, i, nil
		}
		if stopped {
			return "", -1, fmt.Errorf("the process exited")
		}
		select {
		case <-wake:
		case <-stop:
			stopped, stop = true, nil
		case <-deadline.C:
			return "", -1, fmt.Errorf("nothing within %v", timeout)
		}
	}
}

// containsAll matches lines that contain every one of subs.
func containsAll(subs ...string) func(string) bool {
	return func(line string) bool {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				return false
			}
		}
		return true
	}
}

// proc is an external program started by a test, in its own process group so that it and
// its children can be stopped together.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *lineLog // stdout and stderr
	stdin  io.WriteCloser
	exited chan struct{} // closed when the process has exited and its output is read
	err    error         // Wait's result, valid after exited
}

// startProc starts bin with args in dir. Its stdin is a pipe the test writes to (some tools
// need a stdin they can poll and that never ends; /dev/null does not do).
func startProc(name, dir string, env []string, out *lineLog, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = procAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, stdin: stdin, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// send writes one line to the process's stdin.
func (p *proc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("write to %s: %v", p.name, err)
	}
}

// stop sends sig to the process group, waits up to grace for the process to exit, then kills
// the group. Leftover children of the group are killed too. It is safe to call twice.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-p.exited:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // children that outlived their parent
	_ = p.stdin.Close()
}

// runTool runs a short-lived command and returns its combined output.
func runTool(t *testing.T, timeout time.Duration, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// waitDone waits for ch to be closed, up to toolTimeout.
func waitDone(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(toolTimeout):
		t.Fatalf("%s: not within %v", what, toolTimeout)
	}
}
