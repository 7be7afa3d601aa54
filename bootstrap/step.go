package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Step is one declarative stage of bringing the ramdisk up, after u-root's
// libinit.Creator: a name for the log and an idempotent Run.
type Step interface {
	Name() string
	Run(ctx context.Context) error
}

// StepError is the failure of one step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("bootstrap step %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Optional wraps a step whose failure is logged but does not stop the
// bootstrap (a missing entropy source slows the agent, it does not break it).
func Optional(s Step) Step { return optional{s} }

type optional struct{ Step }

// RunSteps runs the steps in order, logging start, end and duration of each,
// and stops at the first failure of a step not wrapped in [Optional].
func RunSteps(ctx context.Context, log *slog.Logger, steps []Step) error {
	for _, s := range steps {
		opt, isOpt := s.(optional)
		if isOpt {
			s = opt.Step
		}
		l := log.With("step", s.Name())
		l.Info("step start")
		t0 := time.Now()
		err := s.Run(ctx)
		d := time.Since(t0).Round(time.Millisecond)
		switch {
		case err == nil:
			l.Info("step done", "duration", d)
		case isOpt:
			l.Warn("step failed, continuing", "duration", d, "err", err)
		default:
			l.Error("step failed", "duration", d, "err", err)
			return &StepError{Step: s.Name(), Err: err}
		}
	}
	return nil
}

// StepFunc adapts a function to a Step.
func StepFunc(name string, run func(ctx context.Context) error) Step { return funcStep{name, run} }

type funcStep struct {
	name string
	run  func(ctx context.Context) error
}

func (f funcStep) Name() string                  { return f.name }
func (f funcStep) Run(ctx context.Context) error { return f.run(ctx) }
