package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/imprint-dev/imprint/partition"
	"github.com/imprint-dev/imprint/provision"
)

// MaxDocumentBytes bounds a provision document in a request body: the
// provision package's limit, which the CLI applies to files too.
const MaxDocumentBytes = provision.MaxDocumentBytes

// Sentinel errors a Jobs implementation returns for the API to map.
var (
	// ErrBusy: a job is pending or running (409).
	ErrBusy = errors.New("a provisioning job is already running")
	// ErrLocked: the node was provisioned successfully; a new job needs
	// force (409).
	ErrLocked = errors.New("node is locked: it was provisioned successfully; send \"force\": true (body) or ?force=true to provision again")
	// ErrNoToken: destructive calls are refused without a token unless
	// insecure (403).
	ErrNoToken = errors.New("destructive calls are refused: no token configured and not started with --insecure")
	// ErrRefused: this agent does not provision this machine (not the
	// bootstrap ramdisk, and its destructive setting is not yes) (403).
	ErrRefused = errors.New("destructive calls are refused on this machine")
)

// ValidationError lists every problem of a provision document (422), and
// the warnings found on the way.
type ValidationError struct {
	Problems []FieldError
	Warnings []FieldError
}

func (e *ValidationError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "invalid provision document: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "; %s: %s", p.Path, p.Msg)
	}
	return b.String()
}

// Jobs plans and runs provisioning jobs (the agent implements it).
type Jobs interface {
	// Plan prepares doc as a job would (validation, plan, configdrive,
	// images, bootloader) and returns the plan; it touches nothing.
	Plan(ctx context.Context, doc []byte) (*PlanResult, error)
	// Start validates doc and starts a job in the background. It returns
	// ErrBusy, ErrLocked, ErrNoToken or a *ValidationError without starting.
	Start(ctx context.Context, doc []byte, force bool) (Status, error)
	// Status is the current (or last) job's status; State is StateIdle
	// before the first job.
	Status() Status
	// Subscribe returns the events after sequence number after (0: all of
	// the current job), then live ones until ctx ends or the job's stream
	// ends (the channel is closed).
	Subscribe(ctx context.Context, after int64) <-chan Event
}

// Job states.
const (
	StateIdle      = "idle" // no job yet
	StatePending   = "pending"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Status is a job's state as GET /v1/provision reports it.
type Status struct {
	ID         string       `json:"id,omitempty"`
	State      string       `json:"state"`
	Step       string       `json:"step,omitempty"` // current (or failing) step
	Steps      []StepStatus `json:"steps,omitempty"`
	BytesDone  int64        `json:"bytes_done"`
	BytesTotal int64        `json:"bytes_total"` // -1 while unknown
	Error      *JobError    `json:"error,omitempty"`
	// Warnings are the document's and the plan's warnings, and one per
	// image written without any verification.
	Warnings []FieldError `json:"warnings,omitempty"`
	// Images says, per image, how it was verified.
	Images     []ImageStatus `json:"images,omitempty"`
	Force      bool          `json:"force,omitempty"`
	Locked     bool          `json:"locked"` // a job succeeded: new ones need force
	CreatedAt  *time.Time    `json:"created_at,omitempty"`
	StartedAt  *time.Time    `json:"started_at,omitempty"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
}

// StepState is the state of one step of a job.
type StepState string

// Step states.
const (
	StepPending   StepState = "pending"
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
)

// StepStatus is one step of a job.
type StepStatus struct {
	Name            string    `json:"name"`
	State           StepState `json:"state"`
	DurationSeconds float64   `json:"duration_seconds"`
	Error           string    `json:"error,omitempty"`
}

// ImageStatus is one image of a job.
type ImageStatus struct {
	Mount  string `json:"mount"`
	URI    string `json:"uri"`
	Device string `json:"device"`
	// Verified is true when the image was checked against a digest (the
	// document's sha256/sha512, or Fuel's metadata raw_md5); false when it
	// was written unverified (said in Warnings too). Nil until written.
	Verified *bool `json:"verified,omitempty"`
	// VerifiedBy lists the checks that passed ("sha256", "md5", "size").
	VerifiedBy []string `json:"verified_by,omitempty"`
}

// JobError says where a job failed, why (a machine-readable reason) and on
// which device.
type JobError struct {
	Step    string `json:"step"`
	Device  string `json:"device,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Reasons a job fails with (JobError.Reason).
const (
	// ReasonNotPlanned: a step would have touched a device outside the
	// plan; the device guard refused it.
	ReasonNotPlanned = "not_planned"
	// ReasonDeviceInUse: a planned disk is mounted, swap, or held.
	ReasonDeviceInUse = "device_in_use"
	// ReasonDeviceMissing: a planned device is not there (or vanished).
	ReasonDeviceMissing = "device_missing"
	// ReasonVerifyFailed: an image did not match its digest, size or md5.
	ReasonVerifyFailed = "verify_failed"
	// ReasonImageUnreachable: an image (or its metadata) could not be
	// fetched.
	ReasonImageUnreachable = "image_unreachable"
	// ReasonConfigdriveTooSmall: the configdrive does not fit its partition.
	ReasonConfigdriveTooSmall = "configdrive_too_small"
	// ReasonCommandFailed: a program (mkfs, mdadm, lvm, grub) failed.
	ReasonCommandFailed = "command_failed"
	// ReasonIO: reading or writing a device failed.
	ReasonIO = "io_error"
	// ReasonCancelled: the job was cancelled (the agent was stopped).
	ReasonCancelled = "cancelled"
	// ReasonInternal: anything else.
	ReasonInternal = "internal"
)

// PlanResult is the 200 body of POST /v1/plan: the plan, with every
// warning of the document and the plan, and the devices a job with this
// document may write.
type PlanResult struct {
	partition.Plan
	Warnings []FieldError `json:"warnings,omitempty"`
	// Writable lists the block devices the job may write, each with why.
	Writable []string `json:"writable_devices"`
}

// Event types.
const (
	EventState     = "state" // the job's state changed
	EventStepStart = "step_start"
	EventStepEnd   = "step_end"
	EventProgress  = "progress"
	EventWarning   = "warning"
	EventLog       = "log"
)

// Event is one item of the /v1/events stream.
type Event struct {
	Seq        int64     `json:"seq"`
	Type       string    `json:"type"`
	Time       time.Time `json:"time"`
	Job        string    `json:"job"`
	State      string    `json:"state,omitempty"`
	Step       string    `json:"step,omitempty"`
	Device     string    `json:"device,omitempty"`
	Message    string    `json:"message,omitempty"`
	BytesDone  int64     `json:"bytes_done,omitempty"`
	BytesTotal int64     `json:"bytes_total,omitempty"`
	Error      *JobError `json:"error,omitempty"`
	// DurationSeconds is set on step_end.
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
}

// StartResponse is the 202 body of POST /v1/provision.
type StartResponse struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Status string `json:"status"` // URL of the status resource
	Events string `json:"events"`
}

func readDocument(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDocumentBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("provision document larger than %d bytes", MaxDocumentBytes))
		} else {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, Error{
			Error:    "empty provision document",
			Problems: []FieldError{{Path: "", Msg: "the request body must be the provision.json document"}},
		})
		return nil, false
	}
	return body, true
}

// writeJobError maps a Jobs error to its status code.
func writeJobError(w http.ResponseWriter, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, Error{Error: ve.Error(), Problems: ve.Problems, Warnings: ve.Warnings})
	case errors.Is(err, ErrBusy), errors.Is(err, ErrLocked):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNoToken), errors.Is(err, ErrRefused):
		writeError(w, http.StatusForbidden, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

type planResource struct{ jobs Jobs }

func (res planResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Post("/", func(w http.ResponseWriter, r *http.Request) {
		if res.jobs == nil {
			writeError(w, http.StatusServiceUnavailable, "provisioning is not available")
			return
		}
		doc, ok := readDocument(w, r)
		if !ok {
			return
		}
		doc, _ = splitForce(doc)
		plan, err := res.jobs.Plan(r.Context(), doc)
		if err != nil {
			writeJobError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, plan)
	})
	return r
}

type provisionResource struct{ jobs Jobs }

func (res provisionResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Post("/", func(w http.ResponseWriter, r *http.Request) {
		if res.jobs == nil {
			writeError(w, http.StatusServiceUnavailable, "provisioning is not available")
			return
		}
		force := false
		if q := r.URL.Query().Get("force"); q != "" {
			b, err := strconv.ParseBool(q)
			if err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, Error{Error: "invalid query", Problems: []FieldError{{Path: "?force", Msg: fmt.Sprintf("%q is not a boolean", q)}}})
				return
			}
			force = b
		}
		doc, ok := readDocument(w, r)
		if !ok {
			return
		}
		doc, bodyForce := splitForce(doc)
		force = force || bodyForce
		// The job must outlive the request.
		st, err := res.jobs.Start(context.WithoutCancel(r.Context()), doc, force)
		if err != nil {
			writeJobError(w, err)
			return
		}
		w.Header().Set("Location", "/v1/provision")
		writeJSON(w, http.StatusAccepted, StartResponse{ID: st.ID, State: st.State, Status: "/v1/provision", Events: "/v1/events"})
	})
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		if res.jobs == nil {
			writeError(w, http.StatusServiceUnavailable, "provisioning is not available")
			return
		}
		writeJSON(w, http.StatusOK, res.jobs.Status())
	})
	return r
}

// splitForce removes a top-level boolean "force" key from a JSON object
// document and reports its value. Anything else is returned unchanged (the
// validator reports what is wrong with it).
func splitForce(doc []byte) ([]byte, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return doc, false
	}
	raw, ok := m["force"]
	if !ok {
		return doc, false
	}
	var force bool
	if err := json.Unmarshal(raw, &force); err != nil {
		return doc, false // not a boolean: leave it for the validator
	}
	delete(m, "force")
	out, err := json.Marshal(m)
	if err != nil {
		return doc, false
	}
	return out, force
}

type eventsResource struct{ jobs Jobs }

func (res eventsResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		if res.jobs == nil {
			writeError(w, http.StatusServiceUnavailable, "provisioning is not available")
			return
		}
		flusher, ok := w.(http.Flusher)
		if !ok {
			writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
			return
		}
		var after int64
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			after, _ = strconv.ParseInt(id, 10, 64)
		} else if q := r.URL.Query().Get("after"); q != "" {
			after, _ = strconv.ParseInt(q, 10, 64)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, ": imprint agent events\nretry: 2000\n\n")
		flusher.Flush()
		ctx := r.Context()
		events := res.jobs.Subscribe(ctx, after)
		keepalive := time.NewTicker(15 * time.Second)
		defer keepalive.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-keepalive.C:
				fmt.Fprint(w, ": keepalive\n\n")
				flusher.Flush()
			case ev, ok := <-events:
				if !ok {
					fmt.Fprint(w, "event: end\ndata: {}\n\n")
					flusher.Flush()
					return
				}
				data, _ := json.Marshal(ev)
				fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data)
				flusher.Flush()
			}
		}
	})
	return r
}
