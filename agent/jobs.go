package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/prepare"
	"github.com/imprint-dev/imprint/provision"
)

// LockFile is the name, under Config.StateDir, of the file that marks the
// node as provisioned (a new provision then needs force).
const LockFile = "provisioned.json"

// JobsOptions configure a Jobs.
type JobsOptions struct {
	Logger *slog.Logger
	// StateDir holds the lock file; empty keeps the lock in memory only.
	StateDir string
	// AllowDestructive must be true for Start to run anything: the API
	// passes "a token is configured or --insecure" (defence in depth: the
	// router already refuses /v1 without a token).
	AllowDestructive bool
	// Refuse, when set, is what Start returns instead of running anything:
	// ErrNotDestructive where the destructive setting does not allow
	// provisioning this machine.
	Refuse error
	// Reporter sends heartbeats and the final result to the controller
	// (nil: no controller).
	Reporter Reporter
	// Heartbeat is the interval of progress heartbeats (default 10s).
	Heartbeat time.Duration
	// ReportTimeout bounds how long the final result is retried (default 10m).
	ReportTimeout time.Duration
	// MaxEvents is how many events are kept for replay (default 4096).
	MaxEvents int
	Now       func() time.Time
}

// Jobs runs provisioning jobs, one at a time, and keeps their state and
// events. It implements api.Jobs. The zero value is not usable: call NewJobs.
type Jobs struct {
	ctx   context.Context // parent of every job: cancelled on SIGTERM
	steps Steps
	opts  JobsOptions
	log   *slog.Logger

	mu      sync.Mutex
	cur     *job
	locked  bool
	events  []api.Event
	seq     int64
	changed chan struct{} // closed and replaced on every new event
	wg      sync.WaitGroup
}

var _ api.Jobs = (*Jobs)(nil)

// NewJobs returns a job runner whose jobs are children of ctx: cancelling
// ctx (SIGTERM) stops the running job's step and its child processes and
// leaves the job failed.
func NewJobs(ctx context.Context, steps Steps, opts JobsOptions) (*Jobs, error) {
	if err := steps.check(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 10 * time.Second
	}
	if opts.ReportTimeout <= 0 {
		opts.ReportTimeout = 10 * time.Minute
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 4096
	}
	j := &Jobs{ctx: ctx, steps: steps, opts: opts, log: opts.Logger, changed: make(chan struct{})}
	if opts.StateDir != "" {
		if _, err := os.Stat(filepath.Join(opts.StateDir, LockFile)); err == nil {
			j.locked = true
			j.log.Warn("node is locked: it was provisioned before; a new provision needs force", "lock", filepath.Join(opts.StateDir, LockFile))
		}
	}
	return j, nil
}

// job is one provisioning run.
type job struct {
	id       string
	force    bool
	state    string
	step     string
	steps    []*stepState
	images   []imageProgress
	err      *api.JobError
	cause    error // the failing step's own error, for errors.As
	created  time.Time
	started  time.Time
	finished time.Time
	prep     *prepare.Job
	plan     *partition.Plan
	warnings []api.FieldError
	imgStat  []api.ImageStatus
	done     chan struct{}
}

type stepState struct {
	name  string
	state string
	start time.Time
	dur   time.Duration
	err   string
}

type imageProgress struct{ done, total int64 }

func newJobID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// prepare collects the inventory and prepares data on it (package
// prepare); a refused document is an *api.ValidationError.
func (j *Jobs) prepare(ctx context.Context, data []byte) (*prepare.Job, time.Duration, error) {
	t0 := j.opts.Now()
	inv, err := j.steps.Inventory.Collect(ctx)
	if err != nil {
		return nil, 0, &StepError{Step: StepPrepare, Err: fmt.Errorf("collect inventory: %w", err)}
	}
	pj, err := prepare.Prepare(ctx, data, inv, j.steps.Prepare)
	if err != nil {
		return nil, 0, &StepError{Step: StepPrepare, Err: asValidationError(err)}
	}
	return pj, j.opts.Now().Sub(t0), nil
}

// asValidationError turns a refused document into the API's 422 form;
// any other error is returned as it is.
func asValidationError(err error) error {
	var pe *prepare.Error
	if errors.As(err, &pe) {
		return &api.ValidationError{Problems: fieldErrors(pe.Problems), Warnings: fieldErrors(pe.Warnings)}
	}
	var se *provision.SyntaxError
	if errors.As(err, &se) {
		return &api.ValidationError{Problems: []api.FieldError{{Path: "document", Msg: se.Error()}}}
	}
	var ve *provision.ValidationError
	if errors.As(err, &ve) {
		out := &api.ValidationError{}
		for _, p := range ve.Problems {
			out.Problems = append(out.Problems, api.FieldError{Path: p.Path, Msg: p.Msg})
		}
		return out
	}
	return err
}

func fieldErrors(ps []prepare.Problem) []api.FieldError {
	var out []api.FieldError
	for _, p := range ps {
		out = append(out, api.FieldError{Path: p.Path, Msg: p.Msg})
	}
	return out
}

// Plan prepares data as a job would and returns its plan, warnings and
// writable devices (api.Jobs). Nothing is touched.
func (j *Jobs) Plan(ctx context.Context, data []byte) (*api.PlanResult, error) {
	pj, _, err := j.prepare(ctx, data)
	if err != nil {
		return nil, err
	}
	return &api.PlanResult{Plan: *pj.Plan, Warnings: fieldErrors(pj.Warnings), Writable: pj.Devices.Devices()}, nil
}

// Start validates data, computes the plan and starts the job in the
// background (api.Jobs). ctx only bounds validation and planning.
func (j *Jobs) Start(ctx context.Context, data []byte, force bool) (api.Status, error) {
	jb, err := j.begin(ctx, data, force)
	if err != nil {
		return api.Status{}, err
	}
	st := j.Status() // pending: taken before the job can move on
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		j.run(jb)
	}()
	return st, nil
}

// Run is Start in the foreground: it returns when the job (including the
// report) has finished, with its final status and, on failure, a
// *StepError naming the step (`imprint provision`).
func (j *Jobs) Run(ctx context.Context, data []byte, force bool) (api.Status, error) {
	jb, err := j.begin(ctx, data, force)
	if err != nil {
		return api.Status{}, err
	}
	j.run(jb)
	st := j.Status()
	if st.State != api.StateSucceeded {
		e := st.Error
		if e == nil {
			e = &api.JobError{Step: st.Step, Reason: api.ReasonInternal, Message: "failed"}
		}
		j.mu.Lock()
		cause := jb.cause
		j.mu.Unlock()
		if cause == nil {
			cause = errors.New(e.Message)
		}
		return st, &StepError{Step: e.Step, Device: e.Device, Reason: e.Reason, Err: cause}
	}
	return st, nil
}

// Wait blocks until no job is running.
func (j *Jobs) Wait() { j.wg.Wait() }

func (j *Jobs) begin(ctx context.Context, data []byte, force bool) (*job, error) {
	if !j.opts.AllowDestructive {
		return nil, api.ErrNoToken
	}
	if j.opts.Refuse != nil {
		return nil, j.opts.Refuse
	}
	// Reserve the slot first, so two concurrent requests cannot both pass.
	j.mu.Lock()
	if j.cur != nil && (j.cur.state == api.StatePending || j.cur.state == api.StateRunning) {
		j.mu.Unlock()
		return nil, api.ErrBusy
	}
	if j.locked && !force {
		j.mu.Unlock()
		return nil, api.ErrLocked
	}
	now := j.opts.Now()
	jb := &job{id: newJobID(), force: force, state: api.StatePending, created: now, done: make(chan struct{})}
	for _, name := range StepNames() {
		jb.steps = append(jb.steps, &stepState{name: name, state: "pending"})
	}
	prev := j.cur
	j.cur = jb
	j.mu.Unlock()

	pj, dur, err := j.prepare(ctx, data)
	if err != nil {
		// Not a job: give the slot back.
		j.mu.Lock()
		j.cur = prev
		j.mu.Unlock()
		var se *StepError
		if errors.As(err, &se) {
			j.log.Error("provision request refused", "step", se.Step, "err", se.Err)
		}
		return nil, err
	}
	j.mu.Lock()
	jb.prep, jb.plan = pj, pj.Plan
	jb.warnings = fieldErrors(pj.Warnings)
	jb.images = make([]imageProgress, len(pj.Images))
	for i, img := range pj.Images {
		jb.images[i].total = -1
		jb.imgStat = append(jb.imgStat, api.ImageStatus{Mount: img.Mount, URI: img.URI, Device: img.Device})
	}
	jb.steps[0].state, jb.steps[0].dur, jb.steps[0].start = "succeeded", dur, now
	j.mu.Unlock()
	for _, w := range pj.Warnings {
		j.log.Warn("document warning", "path", w.Path, "warning", w.Msg)
	}
	j.log.Info(lineProvisioning, "job", jb.id, "force", force, "disks", len(pj.Plan.Disks), "images", len(pj.Images),
		"writable", pj.Devices.Devices())
	j.emit(api.Event{Type: api.EventState, Job: jb.id, State: api.StatePending})
	return jb, nil
}

// run executes the background steps of jb, then reports.
func (j *Jobs) run(jb *job) {
	defer close(jb.done)
	ctx, cancel := context.WithCancel(j.ctx)
	defer cancel()
	log := j.log.With("job", jb.id)

	j.mu.Lock()
	jb.state, jb.started = api.StateRunning, j.opts.Now()
	j.mu.Unlock()
	j.emit(api.Event{Type: api.EventState, Job: jb.id, State: api.StateRunning})

	hbDone := make(chan struct{})
	if j.opts.Reporter != nil {
		go j.heartbeats(ctx, jb, hbDone)
	} else {
		close(hbDone)
	}

	pj := jb.prep
	type step struct {
		name, line string
		run        func(ctx context.Context) error // nil: skipped
	}
	steps := []step{
		{StepDisks, linePartitioning, func(ctx context.Context) error { return j.steps.Disks.Apply(ctx, pj) }},
		{StepConfigdrive, lineConfigdrive, nil},
		{StepImages, lineCopyimage, func(ctx context.Context) error { return j.writeImages(ctx, jb, log) }},
		{StepBootloader, lineBootloader, nil},
	}
	if j.steps.Configdrive != nil && pj.Configdrive != nil {
		steps[1].run = func(ctx context.Context) error {
			if err := j.steps.Configdrive.Write(ctx, pj); err != nil {
				return &DeviceError{Device: pj.Configdrive.Device, Err: err}
			}
			return nil
		}
	}
	if j.steps.Bootloader != nil {
		steps[3].run = func(ctx context.Context) error { return j.steps.Bootloader.Install(ctx, pj) }
	}

	var failed error
	for _, s := range steps {
		if s.run == nil {
			j.setStep(jb, s.name, "skipped", 0, "")
			log.Info("step skipped", "step", s.name)
			continue
		}
		if failed = j.runStep(ctx, jb, log, s.name, s.line, s.run); failed != nil {
			break
		}
	}
	j.mu.Lock()
	jb.finished = j.opts.Now()
	if failed == nil {
		jb.state, jb.step = api.StateSucceeded, ""
		j.locked = true
	} else {
		jb.state = api.StateFailed
		for _, s := range jb.steps {
			if s.state == "pending" {
				s.state = "skipped"
			}
		}
	}
	state, jerr := jb.state, jb.err
	j.mu.Unlock()
	cancel()
	<-hbDone

	if failed == nil {
		j.writeLock(jb)
		log.Info(lineProvisioningEnd, "duration", jb.finished.Sub(jb.started))
	} else {
		log.Error("provisioning failed", "step", jerr.Step, "device", jerr.Device, "err", jerr.Message)
	}
	j.emit(api.Event{Type: api.EventState, Job: jb.id, State: state, Error: jerr})
	j.report(jb, log)
}

// runStep runs one step, recording its state, duration and error.
func (j *Jobs) runStep(ctx context.Context, jb *job, log *slog.Logger, name, line string, fn func(context.Context) error) error {
	log.Info(line, "step", name)
	t0 := j.opts.Now()
	j.mu.Lock()
	jb.step = name
	for _, s := range jb.steps {
		if s.name == name {
			s.state, s.start = "running", t0
		}
	}
	j.mu.Unlock()
	j.emit(api.Event{Type: api.EventStepStart, Job: jb.id, Step: name})

	err := fn(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err() // a step that ignored its cancellation
	}
	dur := j.opts.Now().Sub(t0)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = fmt.Errorf("cancelled (%v): %w", cause, err)
		}
		dev := deviceOf(err)
		j.mu.Lock()
		jb.err = &api.JobError{Step: name, Device: dev, Reason: reasonOf(err), Message: err.Error()}
		jb.cause = err
		j.mu.Unlock()
		j.setStep(jb, name, "failed", dur, err.Error())
		log.Error("step failed", "step", name, "device", dev, "duration", dur, "err", err)
		j.emit(api.Event{Type: api.EventStepEnd, Job: jb.id, Step: name, State: "failed", Device: dev, Message: err.Error(), DurationSeconds: dur.Seconds(), Error: jb.err})
		return err
	}
	j.setStep(jb, name, "succeeded", dur, "")
	log.Info("step done", "step", name, "duration", dur)
	j.emit(api.Event{Type: api.EventStepEnd, Job: jb.id, Step: name, State: "succeeded", DurationSeconds: dur.Seconds()})
	return nil
}

func (j *Jobs) setStep(jb *job, name, state string, dur time.Duration, errMsg string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range jb.steps {
		if s.name == name {
			s.state, s.dur, s.err = state, dur, errMsg
		}
	}
}

// writeImages writes every image of the plan, in plan order.
func (j *Jobs) writeImages(ctx context.Context, jb *job, log *slog.Logger) error {
	for i, img := range jb.prep.Images {
		log.Info("writing image", "uri", img.URI, "device", img.Device, "mount", img.Mount, "container", img.Container,
			"sha256", img.SHA256 != "", "sha512", img.SHA512 != "")
		var last time.Time
		progress := func(done, total int64) {
			j.mu.Lock()
			jb.images[i] = imageProgress{done: done, total: total}
			bd, bt := jb.bytes()
			j.mu.Unlock()
			if now := j.opts.Now(); now.Sub(last) >= time.Second || (total > 0 && done == total) {
				last = now
				j.emit(api.Event{Type: api.EventProgress, Job: jb.id, Step: StepImages, Device: img.Device, BytesDone: bd, BytesTotal: bt})
			}
		}
		res, err := j.steps.Images.Write(ctx, jb.prep, img, progress)
		if err != nil {
			return &DeviceError{Device: img.Device, Err: fmt.Errorf("image %s: %w", img.URI, err)}
		}
		verified := res.Verified()
		j.mu.Lock()
		jb.imgStat[i].Verified, jb.imgStat[i].VerifiedBy = &verified, res.VerifiedBy
		if !verified {
			jb.warnings = append(jb.warnings, api.FieldError{
				Path: "ks_meta.image_data[" + fmt.Sprintf("%q", img.Mount) + "]",
				Msg:  fmt.Sprintf("verified: false: %s was written to %s without any digest check (no sha256/sha512 in the document, no Fuel metadata beside the image)", img.URI, img.Device),
			})
		}
		j.mu.Unlock()
		if !verified {
			log.Warn("image written unverified", "uri", img.URI, "device", img.Device, "verified", false)
			j.emit(api.Event{Type: api.EventWarning, Job: jb.id, Step: StepImages, Device: img.Device, Message: "verified: false: " + img.URI + " was written without any digest check"})
		}
	}
	return nil
}

// bytes sums the images' progress; the total is -1 while any is unknown.
func (jb *job) bytes() (done, total int64) {
	for _, p := range jb.images {
		done += p.done
		if p.total < 0 || total < 0 {
			total = -1
		} else {
			total += p.total
		}
	}
	return done, total
}

func (j *Jobs) writeLock(jb *job) {
	if j.opts.StateDir == "" {
		return
	}
	b, _ := json.MarshalIndent(map[string]any{"job": jb.id, "finished_at": jb.finished, "bootloader": jb.plan.Bootloader}, "", "  ")
	if err := os.MkdirAll(j.opts.StateDir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(j.opts.StateDir, LockFile), append(b, '\n'), 0o644)
		if err == nil {
			return
		}
	}
	j.log.Warn("lock file not written; the node stays locked only while the agent runs", "dir", j.opts.StateDir)
}

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
		j.setStep(jb, StepReport, "skipped", 0, "")
		return
	}
	timeout := j.opts.ReportTimeout
	if j.ctx.Err() != nil {
		timeout = 5 * time.Second // shutting down: one short try
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), timeout)
	defer cancel()
	t0 := j.opts.Now()
	j.setStep(jb, StepReport, "running", 0, "")
	j.emit(api.Event{Type: api.EventStepStart, Job: jb.id, Step: StepReport})
	err := j.opts.Reporter.Result(ctx, j.Status())
	dur := j.opts.Now().Sub(t0)
	if err != nil {
		log.Error("result not delivered to the controller", "err", err, "duration", dur)
		j.setStep(jb, StepReport, "failed", dur, err.Error())
		j.emit(api.Event{Type: api.EventWarning, Job: jb.id, Step: StepReport, Message: "result not delivered: " + err.Error()})
		return
	}
	j.setStep(jb, StepReport, "succeeded", dur, "")
	j.emit(api.Event{Type: api.EventStepEnd, Job: jb.id, Step: StepReport, State: "succeeded", DurationSeconds: dur.Seconds()})
}

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
		if s.state == "running" {
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

// emit appends an event and wakes the subscribers.
func (j *Jobs) emit(ev api.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	ev.Seq = j.seq
	if ev.Time.IsZero() {
		ev.Time = j.opts.Now()
	}
	j.events = append(j.events, ev)
	if over := len(j.events) - j.opts.MaxEvents; over > 0 {
		j.events = append(j.events[:0], j.events[over:]...)
	}
	close(j.changed)
	j.changed = make(chan struct{})
}

// Subscribe streams the kept events with Seq > after, then live ones, until
// ctx ends (api.Jobs). A slow reader never blocks the job: it catches up
// from the kept events (and misses those trimmed meanwhile).
func (j *Jobs) Subscribe(ctx context.Context, after int64) <-chan api.Event {
	out := make(chan api.Event, 16)
	go func() {
		defer close(out)
		cursor := after
		for {
			j.mu.Lock()
			var batch []api.Event
			for _, ev := range j.events {
				if ev.Seq > cursor {
					batch = append(batch, ev)
				}
			}
			wait := j.changed
			j.mu.Unlock()
			for _, ev := range batch {
				select {
				case out <- ev:
					cursor = ev.Seq
				case <-ctx.Done():
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
