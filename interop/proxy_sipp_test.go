package interop

import (
	"fmt"
	"strings"
	"testing"
)

// TestKamailioOCSSession: an OCS/Lync-style sipp client (ocs_proxy_client.xml) opens an IM
// session to the bot's address of record through Kamailio, which finds the bot by
// lookup(location) and record-routes the dialog. The client's ACK, typing INFO, MESSAGE and
// BYE follow the route set to the bot, and the bot's typing INFO and echo MESSAGE come back
// along it (Kamailio's loose_route, its Via on top). Over UDP, over TCP, and with a TCP
// client and a bot registered over UDP (Kamailio then record-routes twice, one entry per
// transport).
func TestKamailioOCSSession(t *testing.T) {
	for _, tc := range []struct{ name, client, bot string }{
		{"udp", "udp", "udp"},
		{"tcp", "tcp", "tcp"},
		{"tcp-client-udp-bot", "tcp", "udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireTool(t, "sipp", "sip-tester")
			k := startKamailio(t, kamOptions{})
			startRegisteredBot(t, k, tc.bot, nil)
			mark := k.log.Len()
			res := runSipp(t, sippRun{
				Scenario:  "ocs_proxy_client.xml",
				Transport: tc.client,
				Target:    k.addr(),
			})
			t.Logf("sipp <log> trace:\n%s", res.Logs)
			proxyVia := fmt.Sprintf("via SIP/2.0/%s %s", strings.ToUpper(tc.client), k.addr())
			requireSippOK(t, res,
				"answer m-line: m=message ",
				"record-route sip:"+k.addr(),
				"bot keyboard state: type",
				proxyVia+"; content-type application/xml",
				"bot replied: echo: what time is it?",
				"; "+proxyVia,
				"session closed with BYE",
			)
			// The bot's requests took the route set: Kamailio's loose_route relayed them.
			k.expect(mark, "IMBOT-INDIALOG INFO sip:olivia@", "from=sip:bot@", "/"+tc.bot)
			k.expect(mark, "IMBOT-INDIALOG MESSAGE sip:olivia@", "from=sip:bot@", "/"+tc.bot)
			k.expect(mark, "IMBOT-INDIALOG BYE sip:bot@", "/"+tc.client)
		})
	}
}
