package handlers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store/sqlite"
)

// announcingStore is the child's store: it says on stdout which delivery it forgets, so
// that the parent kills it once the lines it sent are recorded as delivered.
type announcingStore struct{ *sqlite.DB }

func (s announcingStore) DeleteRoomDelivery(ctx context.Context, room string, seq int64) error {
	ds, _ := s.RoomDeliveries(ctx, room)
	err := s.DB.DeleteRoomDelivery(ctx, room, seq)
	for _, d := range ds {
		if d.Seq == seq && err == nil {
			fmt.Printf("delivered %s %s\n", d.To, d.Text)
		}
	}
	return err
}

// TestRoomCrashHelper is the child process of TestRoomBotSIGKILL: a bot on the address
// IMBOT_ROOM_ADDR with rooms kept in the SQLite file IMBOT_ROOM_DB, which makes a room of
// whoever asks, ann (IMBOT_ROOM_ANN, page mode) and sam (IMBOT_ROOM_SAM, an IM session). It
// says "ready" on stdout, and "delivered <to> <text>" for each line delivered, and serves
// until it is killed.
func TestRoomCrashHelper(t *testing.T) {
	path := os.Getenv("IMBOT_ROOM_DB")
	if path == "" {
		t.Skip("only runs as the child of TestRoomBotSIGKILL")
	}
	ctx := context.Background()
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		fail(err)
	}
	b, err := bot.New(bot.Config{
		Listen: []string{"udp://" + os.Getenv("IMBOT_ROOM_ADDR")}, Identity: "sip:bot@127.0.0.1", Trust: loopbackProxy,
		Typing: bot.TypingConfig{Off: true}, Logger: discardLogger(),
	})
	if err != nil {
		fail(err)
	}
	rooms, err := NewRooms(RoomsConfig{Bot: b, Store: announcingStore{db}, Ready: b.Ready(), Logger: discardLogger()})
	if err != nil {
		fail(err)
	}
	b.Use(rooms.Middleware())
	b.Handle(roomHandler(rooms, &roomEvents{}, func(ctx context.Context, rm *Room) error {
		if err := rm.Invite(ctx, os.Getenv("IMBOT_ROOM_ANN"), InviteOptions{}); err != nil {
			return err
		}
		return rm.Invite(ctx, os.Getenv("IMBOT_ROOM_SAM"), InviteOptions{Session: true})
	}))
	go func() {
		<-b.Ready()
		fmt.Println("ready")
	}()
	if err := b.Run(ctx); err != nil {
		fail(err)
	}
}

// TestRoomBotSIGKILL: a bot hosting a room of three is killed with SIGKILL (no BYE, no
// goodbye) once its lines are delivered; a new bot on the same address and SQLite file
// resumes the room: every participant is told once, sam (whose IM session died with the old
// bot) in page mode, lines flow between all three, and nothing delivered before the crash
// comes again. (A line whose delivery the killed bot had not recorded yet would come again:
// a delivery is recorded when its 200 is back.)
func TestRoomBotSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ctx := testCtx(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	path := filepath.Join(t.TempDir(), "imbot.db")
	peer := func(o bottest.Options) *bottest.Peer {
		o.Bot, o.BotURI = addr, "sip:bot@127.0.0.1"
		p, err := bottest.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	alice := peer(bottest.Options{User: "alice"})
	ann := peer(bottest.Options{User: "ann", AssertIdentity: true})
	sam := peer(bottest.Options{User: "sam", AssertIdentity: true, AcceptSessions: true})
	t.Cleanup(func() { // after the second bot stopped
		alice.Close()
		ann.Close()
		sam.Close()
	})

	cmd := exec.Command(os.Args[0], "-test.run=^TestRoomCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IMBOT_ROOM_DB="+path, "IMBOT_ROOM_ADDR="+addr,
		"IMBOT_ROOM_ANN="+ann.URI(), "IMBOT_ROOM_SAM="+sam.URI())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill() // SIGKILL on Unix
			_ = cmd.Wait()
		}
	}
	t.Cleanup(kill)
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitLine := func(want string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok || strings.HasPrefix(l, "error:") {
					t.Fatalf("the child bot ended, or failed (%q), before saying %q", l, want)
				}
				if l == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("the child bot did not say %q", want)
			}
		}
	}
	waitLine("ready")

	ss := roomOfThree(t, ctx, alice, ann, sam)
	if res, err := ss.Send(ctx, "sam here"); err != nil || res.StatusCode != 200 {
		t.Fatalf("sam's line: %v %v", res, err)
	}
	waitText(t, ctx, alice, "sam: sam here")
	waitText(t, ctx, ann, "sam: sam here")
	waitLine("delivered " + ann.URI() + " sam: sam here") // the last one
	kill()

	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	b2, err := bot.New(bot.Config{
		Listen: []string{"udp://" + addr}, Identity: "sip:bot@127.0.0.1", Trust: loopbackProxy,
		Typing: bot.TypingConfig{Off: true}, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := NewRooms(RoomsConfig{Bot: b2, Store: db, Ready: b2.Ready(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rooms.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(serveRooms(t, b2, rooms, roomHandler(rooms, &roomEvents{}, nil)))

	const resumedAnn = "(The bot restarted; your conversation with alice, sam continues.)"
	const resumedSam = "(The bot restarted; your conversation with alice, ann continues.)"
	const resumedAlice = "(The bot restarted; your conversation with ann, sam continues.)"
	waitText(t, ctx, ann, resumedAnn)
	waitText(t, ctx, sam, resumedSam)
	send(t, ctx, alice, "still there?")
	waitText(t, ctx, alice, resumedAlice)
	waitText(t, ctx, ann, "alice: still there?")
	waitText(t, ctx, sam, "alice: still there?")
	send(t, ctx, ann, "yes")
	waitText(t, ctx, alice, "ann: yes")
	waitText(t, ctx, sam, "ann: yes")
	checkOnce(t, []textOnce{
		{ann, resumedAnn}, {sam, resumedSam}, {alice, resumedAlice},
		{ann, "alice: hello all"}, {sam, "alice: hello all"}, {alice, "sam: sam here"}, {ann, "sam: sam here"},
		{ann, "alice: still there?"}, {sam, "alice: still there?"}, {alice, "ann: yes"},
	})
}
