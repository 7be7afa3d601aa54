package agent

// Running a job: its steps in order, each recorded with its state,
// duration and error, the images with their progress, the lock file.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/prepare"
)

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
		{StepImages, lineCopyimage, func(ctx context.Context) error {
			if err := j.writeImages(ctx, jb, log); err != nil {
				return err
			}
			return j.moveFiles(ctx, pj, log)
		}},
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
			j.setStep(jb, s.name, api.StepSkipped, 0, "")
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
			if s.state == api.StepPending {
				s.state = api.StepSkipped
			}
		}
	}
	state, jerr := jb.state, jb.err
	j.mu.Unlock()
	j.opts.Metrics.job(state)
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
			s.state, s.start = api.StepRunning, t0
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
		j.opts.Metrics.step(name, string(api.StepFailed), dur)
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = fmt.Errorf("cancelled (%v): %w", cause, err)
		}
		dev := deviceOf(err)
		j.mu.Lock()
		jb.err = &api.JobError{Step: name, Device: dev, Reason: reasonOf(err), Message: err.Error()}
		jb.cause = err
		j.mu.Unlock()
		j.setStep(jb, name, api.StepFailed, dur, err.Error())
		log.Error("step failed", "step", name, "device", dev, "duration", dur, "err", err)
		j.emit(api.Event{Type: api.EventStepEnd, Job: jb.id, Step: name, State: string(api.StepFailed), Device: dev, Message: err.Error(), DurationSeconds: dur.Seconds(), Error: jb.err})
		return err
	}
	j.setStep(jb, name, api.StepSucceeded, dur, "")
	j.opts.Metrics.step(name, string(api.StepSucceeded), dur)
	log.Info("step done", "step", name, "duration", dur)
	j.emit(api.Event{Type: api.EventStepEnd, Job: jb.id, Step: name, State: string(api.StepSucceeded), DurationSeconds: dur.Seconds()})
	return nil
}

func (j *Jobs) setStep(jb *job, name string, state api.StepState, dur time.Duration, errMsg string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range jb.steps {
		if s.name == name {
			s.state, s.dur, s.err = state, dur, errMsg
			if state == api.StepRunning {
				s.start = j.opts.Now() // its duration counts from now
			}
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

// moveFiles runs the plan's moves (what the root image holds under
// /var/log goes into the /var/log filesystem).
func (j *Jobs) moveFiles(ctx context.Context, pj *prepare.Job, log *slog.Logger) error {
	if len(pj.Moves) == 0 {
		return nil
	}
	if j.steps.Files == nil {
		log.Warn("files below nested mount points not moved: no files step", "moves", len(pj.Moves))
		return nil
	}
	return j.steps.Files.Move(ctx, pj)
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
