package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/store"
)

// TestCrashHelper is the child process of TestSIGKILL: it writes to the database named by
// IMBOT_CRASH_DB, says so on stdout, and waits to be killed.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv("IMBOT_CRASH_DB")
	if path == "" {
		t.Skip("only runs as the child of TestSIGKILL")
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for i := range 50 {
		key := fmt.Sprintf("user%d", i)
		if err := db.Save(ctx, key, store.ConversationState{State: "ask-urgency", Vars: map[string]any{"summary": "VPN", "i": i}}); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := db.AppendTranscript(ctx, store.TranscriptEntry{Key: key, Direction: store.In, Text: "my vpn"}); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}
	if _, err := db.CreateTicket(ctx, store.Ticket{Key: "user0", Summary: "VPN"}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("written")
	select {} // wait for SIGKILL, with the database open
}

// TestSIGKILL: a process killed with SIGKILL right after its writes returned loses none of
// them; the next Open finds everything.
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IMBOT_CRASH_DB="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "written" || strings.HasPrefix(sc.Text(), "error:") {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(lines) == 0 || lines[len(lines)-1] != "written" {
		t.Fatalf("child did not write: %q", lines)
	}

	ctx := testCtx(t)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 50 {
		key := fmt.Sprintf("user%d", i)
		c, err := db.Load(ctx, key)
		if err != nil || c.State != "ask-urgency" || c.Vars["i"] != i {
			t.Fatalf("%s after SIGKILL: %#v, %v", key, c, err)
		}
		if tr, _ := db.Transcript(ctx, key, 0); len(tr) != 1 {
			t.Fatalf("%s transcript after SIGKILL: %+v", key, tr)
		}
	}
	if tk, err := db.Ticket(ctx, 1001); err != nil || tk.Summary != "VPN" {
		t.Errorf("ticket after SIGKILL: %+v, %v", tk, err)
	}
}
