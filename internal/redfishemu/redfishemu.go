// Package redfishemu is a Redfish service emulator for tests, in the
// manner of sushy-tools' libvirt driver: one ComputerSystem whose power is
// a QEMU process, driven over QMP. It is a simulation and says so (its
// service root's Name, its log lines); no emulator package is available
// here.
//
// Resources: the service root, /redfish/v1/Systems and its one system
// (PowerState) with the ComputerSystem.Reset action: On starts QEMU (or
// resumes a paused one: QMP cont), ForceOff quits it (QMP quit),
// GracefulShutdown presses the ACPI power button (QMP system_powerdown),
// ForceRestart and PowerCycle reset it (QMP system_reset; a machine that is
// off is started). HTTP basic authentication. SetFault makes it answer 500
// or never answer, to test a failing BMC.
package redfishemu

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Config configures the emulator.
type Config struct {
	// QEMU is the machine's command line (program first), without -qmp:
	// the emulator adds its QMP socket. Empty: a machine that cannot be
	// powered on (the fault tests need none).
	QEMU     []string
	Dir      string // QMP socket and QEMU's output
	SystemID string // default "node-1"
	Username string // default "admin"
	Password string // default "imprint-redfish-pw"
	Log      *slog.Logger
}

// Fault is how the emulator misbehaves.
type Fault string

const (
	NoFault   Fault = ""
	Fault500  Fault = "500"  // every request answers 500 Internal Server Error
	FaultHang Fault = "hang" // every request waits until the client gives up
)

// Emulator is a running emulator.
type Emulator struct {
	cfg  Config
	URL  string // http://127.0.0.1:PORT
	srv  *http.Server
	log  *slog.Logger
	qmp  string
	stop chan struct{}

	mu    sync.Mutex
	fault Fault
	cmd   *exec.Cmd
	exit  chan struct{} // closed when the current QEMU exited
	// Resets counts the ComputerSystem.Reset actions done, by type.
	resets map[string]int
}

// Start serves the emulator on 127.0.0.1 at a free port; the machine is
// off.
func Start(cfg Config) (*Emulator, error) {
	if cfg.SystemID == "" {
		cfg.SystemID = "node-1"
	}
	if cfg.Username == "" {
		cfg.Username = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = "imprint-redfish-pw"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redfish emulator: %w", err)
	}
	e := &Emulator{cfg: cfg, URL: "http://" + ln.Addr().String(), log: cfg.Log.With("component", "redfish emulator (simulation)"),
		qmp: filepath.Join(cfg.Dir, "qmp.sock"), stop: make(chan struct{}), resets: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /redfish/v1/{$}", e.root)
	mux.HandleFunc("GET /redfish/v1", e.root)
	mux.HandleFunc("GET /redfish/v1/Systems", e.auth(e.systems))
	mux.HandleFunc("GET /redfish/v1/Systems/{id}", e.auth(e.system))
	mux.HandleFunc("POST /redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset", e.auth(e.reset))
	e.srv = &http.Server{Handler: e.faulty(mux), ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(ln)
	e.log.Info("serving", "url", e.URL, "system", cfg.SystemID)
	return e, nil
}

// SetFault makes every later request misbehave (NoFault: behave).
func (e *Emulator) SetFault(f Fault) {
	e.mu.Lock()
	e.fault = f
	e.mu.Unlock()
}

// Resets is how many resets of each type were done.
func (e *Emulator) Resets() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.resets {
		out[k] = v
	}
	return out
}

// Credentials are the user and password the emulator accepts.
func (e *Emulator) Credentials() (string, string) { return e.cfg.Username, e.cfg.Password }

// Pid is the machine's QEMU pid while it runs (0: off).
func (e *Emulator) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

// Close stops serving and kills the machine.
func (e *Emulator) Close() {
	close(e.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	e.srv.Shutdown(ctx)
	cancel()
	e.srv.Close()
	e.mu.Lock()
	cmd, exit := e.cmd, e.exit
	e.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		<-exit
	}
}

func (e *Emulator) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		f := e.fault
		e.mu.Unlock()
		switch f {
		case Fault500:
			e.log.Warn("injected fault: 500", "method", r.Method, "path", r.URL.Path)
			redfishError(w, http.StatusInternalServerError, "Base.1.8.InternalError", "injected fault (redfish emulator)")
			return
		case FaultHang:
			e.log.Warn("injected fault: no answer", "method", r.Method, "path", r.URL.Path)
			select {
			case <-r.Context().Done():
			case <-e.stop:
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (e *Emulator) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(e.cfg.Username)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(e.cfg.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="redfish emulator"`)
			redfishError(w, http.StatusUnauthorized, "Base.1.8.InsufficientPrivilege", "wrong user or password")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func redfishError(w http.ResponseWriter, code int, id, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": id, "message": msg,
		"@Message.ExtendedInfo": []map[string]string{{"MessageId": id, "Message": msg}}}})
}

func (e *Emulator) root(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
		"Id": "RootService", "Name": "imprint Redfish emulator (simulation: QEMU over QMP)", "RedfishVersion": "1.6.0",
		"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"},
	})
}

func (e *Emulator) systems(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id": "/redfish/v1/Systems", "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
		"Name": "Computer System Collection", "Members@odata.count": 1,
		"Members": []map[string]string{{"@odata.id": "/redfish/v1/Systems/" + e.cfg.SystemID}},
	})
}

func (e *Emulator) system(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") != e.cfg.SystemID {
		redfishError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no system "+r.PathValue("id"))
		return
	}
	state := "Off"
	if e.Pid() != 0 {
		state = "On"
	}
	id := "/redfish/v1/Systems/" + e.cfg.SystemID
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id": id, "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
		"Id": e.cfg.SystemID, "Name": "QEMU machine (redfish emulator)", "SystemType": "Virtual", "PowerState": state,
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            id + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"},
		}},
	})
}

func (e *Emulator) reset(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") != e.cfg.SystemID {
		redfishError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no system "+r.PathValue("id"))
		return
	}
	var req struct{ ResetType string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	var err error
	on := e.Pid() != 0
	switch req.ResetType {
	case "On":
		if !on {
			err = e.powerOn()
		} else {
			_, err = e.command("cont") // a paused machine resumes
		}
	case "ForceOff":
		if on {
			err = e.powerOff()
		}
	case "GracefulShutdown":
		if on {
			_, err = e.command("system_powerdown")
		}
	case "ForceRestart", "PowerCycle":
		if on {
			_, err = e.command("system_reset")
		} else {
			err = e.powerOn()
		}
	default:
		redfishError(w, http.StatusBadRequest, "Base.1.8.ActionParameterValueNotInList", fmt.Sprintf("ResetType %q: want On, ForceOff, GracefulShutdown, ForceRestart or PowerCycle", req.ResetType))
		return
	}
	if err != nil {
		e.log.Error("reset", "type", req.ResetType, "err", err)
		redfishError(w, http.StatusInternalServerError, "Base.1.8.InternalError", "reset "+req.ResetType+": "+err.Error())
		return
	}
	e.mu.Lock()
	e.resets[req.ResetType]++
	e.mu.Unlock()
	e.log.Info("reset", "type", req.ResetType, "qemu_pid", e.Pid())
	w.WriteHeader(http.StatusNoContent)
}

// powerOn starts QEMU with a QMP socket and waits until QMP answers.
func (e *Emulator) powerOn() error {
	if len(e.cfg.QEMU) == 0 {
		return errors.New("this emulator has no machine to power on")
	}
	os.Remove(e.qmp)
	args := append(append([]string{}, e.cfg.QEMU[1:]...), "-qmp", "unix:"+e.qmp+",server=on,wait=off")
	cmd := exec.Command(e.cfg.QEMU[0], args...)
	out, err := os.OpenFile(filepath.Join(e.cfg.Dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", e.cfg.QEMU[0], err)
	}
	exit := make(chan struct{})
	e.mu.Lock()
	e.cmd, e.exit = cmd, exit
	e.mu.Unlock()
	go func() {
		cmd.Wait()
		out.Close()
		e.mu.Lock()
		if e.cmd == cmd {
			e.cmd = nil
		}
		e.mu.Unlock()
		close(exit)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := e.command("query-status")
		if err == nil {
			e.log.Info("QEMU started", "pid", cmd.Process.Pid, "status", string(st))
			return nil
		}
		select {
		case <-exit:
			b, _ := os.ReadFile(filepath.Join(e.cfg.Dir, "qemu.log"))
			return fmt.Errorf("QEMU exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("QMP %s: %w", e.qmp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// powerOff quits QEMU (QMP quit) and waits for it; kills it after 10s.
func (e *Emulator) powerOff() error {
	e.mu.Lock()
	cmd, exit := e.cmd, e.exit
	e.mu.Unlock()
	if cmd == nil {
		return nil
	}
	e.command("quit")
	select {
	case <-exit:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exit
	}
	return nil
}

// command runs one QMP command on a fresh connection and returns its
// "return" value.
func (e *Emulator) command(name string) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", e.qmp, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	type reply struct {
		QMP    json.RawMessage `json:"QMP"`
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Class, Desc string
		} `json:"error"`
		Event string `json:"event"`
	}
	read := func() (reply, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return reply{}, err
			}
			var rep reply
			if err := json.Unmarshal(line, &rep); err != nil {
				return reply{}, fmt.Errorf("QMP: %q: %w", line, err)
			}
			if rep.Event != "" || rep.QMP != nil {
				if rep.QMP != nil {
					return rep, nil
				}
				continue
			}
			return rep, nil
		}
	}
	if _, err := read(); err != nil { // greeting
		return nil, err
	}
	for _, cmd := range []string{"qmp_capabilities", name} {
		if _, err := fmt.Fprintf(c, `{"execute":%q}`+"\n", cmd); err != nil {
			return nil, err
		}
		if cmd == "quit" {
			return nil, nil
		}
		rep, err := read()
		if err != nil {
			return nil, fmt.Errorf("QMP %s: %w", cmd, err)
		}
		if rep.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s: %s", cmd, rep.Error.Class, rep.Error.Desc)
		}
		if cmd == name {
			return rep.Return, nil
		}
	}
	return nil, nil
}
