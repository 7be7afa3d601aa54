package api

import (
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
)

// ErrPowerDisabled: the agent does not act on this machine's power (not the
// ramdisk, or disabled by configuration) (403).
var ErrPowerDisabled = errors.New("power actions are disabled on this machine (not running as the bootstrap ramdisk; start with --power=yes to allow)")

// Power reboots or powers off the machine. Both return at once: the action
// happens shortly after, so the HTTP answer reaches the caller.
type Power interface {
	Reboot() error
	PowerOff() error
}

// Logs is the agent's recent log output.
type Logs interface {
	// WriteLogs writes the buffered log lines, oldest first.
	WriteLogs(w io.Writer) error
}

type powerResource struct {
	power Power
	log   *slog.Logger
}

// ActionResponse is the 202 body of /v1/reboot and /v1/poweroff.
type ActionResponse struct {
	Action string `json:"action"`
}

func (res powerResource) act(w http.ResponseWriter, r *http.Request, action string, do func() error) {
	if res.power == nil {
		writeError(w, http.StatusServiceUnavailable, "power control is not available")
		return
	}
	if err := do(); err != nil {
		switch {
		case errors.Is(err, ErrPowerDisabled):
			writeError(w, http.StatusForbidden, err.Error())
		case errors.Is(err, ErrBusy):
			writeError(w, http.StatusConflict, action+" refused: "+err.Error())
		default:
			writeError(w, http.StatusInternalServerError, action+": "+err.Error())
		}
		return
	}
	res.log.Warn("power action accepted", "action", action, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, ActionResponse{Action: action})
}

func (res powerResource) reboot(w http.ResponseWriter, r *http.Request) {
	res.act(w, r, "reboot", func() error { return res.power.Reboot() })
}

func (res powerResource) poweroff(w http.ResponseWriter, r *http.Request) {
	res.act(w, r, "poweroff", func() error { return res.power.PowerOff() })
}

type logsResource struct{ logs Logs }

func (res logsResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		if res.logs == nil {
			writeError(w, http.StatusServiceUnavailable, "logs are not available")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		res.logs.WriteLogs(w)
	})
	return r
}
