//go:build !race

package helpdesk_test

// raceEnabled is true when the tests run with the race detector: the imbot binary they
// start is then built with it too.
const raceEnabled = false
