package main

import (
	"log/slog"
	"testing"

	"github.com/imprint-dev/imprint/agent"
)

// The agent's zero-offload setting reaches the image writer.
func TestRealStepsZeroOffload(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, on := range []bool{true, false} {
		w, ok := realSteps(agent.Config{ZeroOffload: on}, log, log, nil).Images.(agent.ImageWriter)
		if !ok {
			t.Fatal("the Images step is not an agent.ImageWriter")
		}
		if w.Options.NoZeroOffload == on {
			t.Errorf("zero-offload %v: NoZeroOffload %v", on, w.Options.NoZeroOffload)
		}
	}
}
