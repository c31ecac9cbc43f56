// Package interop holds imbot's interoperability tests: an in-process bot is driven over
// real loopback sockets by external SIP tools (sipp scenarios under testdata/) and by
// hand-written SIP requests, to check its wire behaviour against the peers described in
// PROTOCOL.md.
//
// The package has no API; everything is in its tests. A test whose tool is missing is
// skipped, unless the environment has IMBOT_INTEROP=required (as in CI), in which case it
// fails.
//
//	go test -race -count=1 ./interop/...
package interop
