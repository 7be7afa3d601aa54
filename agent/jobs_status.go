package agent

import (
	"time"

	"github.com/imprint-dev/imprint/api"
)

// Warn records a warning event for the current job and logs it.
func (j *Jobs) Warn(msg string, args ...any) {
	j.log.Warn(msg, args...)
	j.mu.Lock()
	id := ""
	if j.cur != nil {
		id = j.cur.id
	}
	j.mu.Unlock()
	j.emit(api.Event{Type: api.EventWarning, Job: id, Message: msg})
}

// Status returns the current (or last) job's status (api.Jobs).
func (j *Jobs) Status() api.Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	jb := j.cur
	if jb == nil {
		return api.Status{State: api.StateIdle, Locked: j.locked, BytesTotal: -1}
	}
	st := api.Status{ID: jb.id, State: jb.state, Step: jb.step, Force: jb.force, Locked: j.locked, Error: jb.err,
		Warnings: append([]api.FieldError(nil), jb.warnings...), Images: append([]api.ImageStatus(nil), jb.imgStat...)}
	if jb.err != nil {
		st.Step = jb.err.Step
	}
	st.BytesDone, st.BytesTotal = jb.bytes()
	if len(jb.images) == 0 {
		st.BytesTotal = 0
	}
	now := j.opts.Now()
	for _, s := range jb.steps {
		d := s.dur
		if s.state == api.StepRunning {
			d = now.Sub(s.start)
		}
		st.Steps = append(st.Steps, api.StepStatus{Name: s.name, State: s.state, DurationSeconds: d.Seconds(), Error: s.err})
	}
	tp := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	st.CreatedAt, st.StartedAt, st.FinishedAt = tp(jb.created), tp(jb.started), tp(jb.finished)
	return st
}
