// Package interop holds imbot's interoperability tests: an in-process bot is driven over
// real loopback sockets by external SIP tools (sipp scenarios under testdata/) and by
// hand-written SIP requests, to check its wire behaviour against the peers described in
// PROTOCOL.md.
//
// The Kamailio tests put the bot in a small SIP network: each starts its own Kamailio
// (testdata/kamailio.cfg: registrar with usrloc in memory, digest authentication with test
// credentials, record-routing proxy, UDP and TCP on a free loopback port) in the
// foreground, registers the bot with it, and drives real clients through it: baresip and
// linphonec as users (through their stdin, output scraped), sipp as an OCS/Lync-style
// client. Readiness and progress are read from the tools' output (Kamailio logs IMBOT-
// marker lines) and from the bot's registration status and events, never from fixed
// sleeps.
//
// The package has no API; everything is in its tests. A test whose tool is missing is
// skipped, unless the environment has IMBOT_INTEROP=required (as in CI), in which case it
// fails. Tools: sipp (sip-tester), kamailio and kamcmd (kamailio), baresip, linphonec
// (linphone-cli). go test -short skips the package, unless the tests are required.
//
//	go test -race -count=1 ./interop/...
package interop
