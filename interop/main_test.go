package interop

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain skips the whole package under go test -short (the contributors' fast path),
// unless the interop tests are required (IMBOT_INTEROP=required, as in CI).
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() && os.Getenv(requiredEnv) != "required" {
		fmt.Println("interop: skipped under -short (run go test ./interop/ for the interop suite)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
