package store_test

import (
	"testing"

	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return &store.Memory{} })
}
