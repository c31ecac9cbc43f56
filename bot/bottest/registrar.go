package bottest

import (
	"net"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// StartRegistrar starts a registrar on loopback UDP that answers every REGISTER with
// status, or never when status is 0, for tests of how a bot reports its sign-in (a 403, a
// registrar that does not answer). It stops when the test ends. It returns its address,
// "127.0.0.1:port", for bot.RegistrationConfig.Registrar ("sip:" + addr).
func StartRegistrar(t testing.TB, status int) string {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("bottest-registrar"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		if status != 0 {
			_ = tx.Respond(sip.NewResponseFromRequest(req, status, "", nil))
		}
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() {
		_ = pc.Close()
		_ = ua.Close()
	})
	return pc.LocalAddr().String()
}
