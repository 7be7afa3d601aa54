package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/internal/eventlog"
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

	mu     sync.Mutex
	cur    *job
	locked bool
	events *eventlog.Log[api.Event] // every job's events, for GET /v1/events
	wg     sync.WaitGroup
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
	j := &Jobs{ctx: ctx, steps: steps, opts: opts, log: opts.Logger, events: eventlog.New[api.Event](opts.MaxEvents)}
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
	state api.StepState
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
		jb.steps = append(jb.steps, &stepState{name: name, state: api.StepPending})
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
	jb.steps[0].state, jb.steps[0].dur, jb.steps[0].start = api.StepSucceeded, dur, now
	j.mu.Unlock()
	for _, w := range pj.Warnings {
		j.log.Warn("document warning", "path", w.Path, "warning", w.Msg)
	}
	j.log.Info(lineProvisioning, "job", jb.id, "force", force, "disks", len(pj.Plan.Disks), "images", len(pj.Images),
		"writable", pj.Devices.Devices())
	j.emit(api.Event{Type: api.EventState, Job: jb.id, State: api.StatePending})
	return jb, nil
}
