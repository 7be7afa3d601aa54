package agent

// Reporting a job to the controller: heartbeats while it runs, the result
// retried until acknowledged.

import (
	"context"
	"log/slog"
	"time"

	"github.com/imprint-dev/imprint/api"
)

// heartbeats posts the status every Heartbeat while the job runs.
func (j *Jobs) heartbeats(ctx context.Context, jb *job, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(j.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, j.opts.Heartbeat)
			if err := j.opts.Reporter.Progress(hctx, j.Status()); err != nil && ctx.Err() == nil {
				j.log.Warn("heartbeat not delivered", "job", jb.id, "err", err)
			}
			cancel()
		}
	}
}

// report delivers the final result, retrying until acknowledged. It runs
// even when the job was cancelled (with a context of its own).
func (j *Jobs) report(jb *job, log *slog.Logger) {
	if j.opts.Reporter == nil {
		j.setStep(jb, StepReport, api.StepSkipped, 0, "")
		return
	}
	timeout := j.opts.ReportTimeout
	if j.ctx.Err() != nil {
		timeout = 5 * time.Second // shutting down: one short try
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), timeout)
	defer cancel()
	t0 := j.opts.Now()
	j.setStep(jb, StepReport, api.StepRunning, 0, "")
	j.emit(api.Event{Type: api.EventStepStart, Job: jb.id, Step: StepReport})
	err := j.opts.Reporter.Result(ctx, j.Status())
	dur := j.opts.Now().Sub(t0)
	if err != nil {
		log.Error("result not delivered to the controller", "err", err, "duration", dur)
		j.setStep(jb, StepReport, api.StepFailed, dur, err.Error())
		j.emit(api.Event{Type: api.EventWarning, Job: jb.id, Step: StepReport, Message: "result not delivered: " + err.Error()})
		return
	}
	j.setStep(jb, StepReport, api.StepSucceeded, dur, "")
	j.emit(api.Event{Type: api.EventStepEnd, Job: jb.id, Step: StepReport, State: string(api.StepSucceeded), DurationSeconds: dur.Seconds()})
}
