package interop

import "testing"

// TestSippOCSClient drives the bot with an OCS 2007 / Lync style client (ocs_client.xml):
// INVITE with an m=message SDP and the Microsoft headers, ACK, the client's
// KeyboardActivity INFO, a text MESSAGE, then the bot's KeyboardActivity INFO and echo
// MESSAGE inside the dialog, and BYE. The scenario checks the SDP answer, the dialog tags,
// the Request-URI (the client's Contact) and Route (its Record-Route) of the bot's
// requests, and the reply text.
func TestSippOCSClient(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			requireTool(t, "sipp", "sip-tester")
			b := startBot(t)
			res := runSipp(t, sippRun{
				Scenario:  "ocs_client.xml",
				Transport: transport,
				Target:    b.Addr(transport),
			})
			requireSippOK(t, res,
				"answer m-line: m=message ",
				"bot keyboard state: type",
				"bot replied: echo: what time is it?",
				"session closed with BYE",
			)
		})
	}
}

// TestSippPageClient drives the bot with an RFC 3428 page-mode client (page_client.xml
// with page_echo.xml for the reply): the MESSAGE gets 200 with a To-tag, no Contact and no
// body, and the reply comes as a new out-of-dialog text/plain MESSAGE to the sender.
func TestSippPageClient(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			requireTool(t, "sipp", "sip-tester")
			b := startBot(t)
			res := runSipp(t, sippRun{
				Scenario:  "page_client.xml",
				OOC:       "page_echo.xml",
				Transport: transport,
				Target:    b.Addr(transport),
			})
			requireSippOK(t, res,
				"page 200: to-tag ;tag=",
				"bot replied: echo: hello, bot!",
				"page echo received: 1",
			)
		})
	}
}
