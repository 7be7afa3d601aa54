// Package power drives a machine's power through its BMC: IPMI over LAN
// (RMCP+, github.com/bougou/go-ipmi, pure Go) and Redfish
// (github.com/stmcginnis/gofish). The controller declares the interface it
// needs; Drivers implements it.
package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Action is a power request.
type Action string

const (
	On    Action = "on"
	Off   Action = "off"   // hard off (Redfish ForceOff, IPMI power down)
	Cycle Action = "cycle" // off then on; a machine that is off is powered on
)

// Actions are the valid actions, for messages.
var Actions = []Action{On, Off, Cycle}

// ParseAction checks an operator's action.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("power action %q: want on, off or cycle", s)
}

// State is a machine's power state as its BMC reports it.
type State string

const (
	StateOn  State = "on"
	StateOff State = "off"
)

// Drivers of a BMC.
const (
	IPMI    = "ipmi"
	Redfish = "redfish"
)

// BMC is how to reach one machine's BMC. Password is a secret: String and
// every error of this package leave it out.
type BMC struct {
	Driver string `json:"driver"` // ipmi or redfish
	// Address is host:port for IPMI (port 623 by default); for Redfish the
	// service's base URL, https://host[:port] (http only for a test
	// emulator).
	Address  string `json:"address"`
	Username string `json:"username"`
	Password string `json:"password"`
	// Insecure skips the verification of a Redfish BMC's TLS certificate
	// (most BMCs ship a self-signed one).
	Insecure bool `json:"insecure,omitempty"`
	// CipherSuite is the IPMI RMCP+ cipher suite (ipmitool -C, Ironic's
	// ipmi_cipher_suite); 0 asks the BMC for its list (a BMC without Get
	// Channel Cipher Suites, like ipmi_sim, then costs retries).
	CipherSuite int `json:"cipher_suite,omitempty"`
	// System is the Redfish ComputerSystem's Id (default: the service's
	// only system).
	System string `json:"system,omitempty"`
}

// String names the BMC without its password.
func (b BMC) String() string { return b.Driver + " BMC " + b.Address }

// ParseURL reads a BMC address as an operator writes it:
// ipmi://HOST[:PORT][?cipher=N], redfish://HOST[:PORT][/SYSTEM-ID] (https),
// redfish+http://HOST:PORT[/SYSTEM-ID] (plain HTTP: test emulators only).
// Credentials do not belong in the URL.
func ParseURL(s string) (BMC, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return BMC{}, fmt.Errorf("bmc %q: want ipmi://HOST[:PORT] or redfish://HOST[:PORT][/SYSTEM]", s)
	}
	if u.User != nil {
		return BMC{}, fmt.Errorf("bmc %s://%s: credentials go in the user and password options, not the URL", u.Scheme, u.Host)
	}
	var b BMC
	switch u.Scheme {
	case "ipmi":
		if strings.Trim(u.Path, "/") != "" {
			return BMC{}, fmt.Errorf("bmc %q: an IPMI address has no path", s)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "623"
		}
		b = BMC{Driver: IPMI, Address: net.JoinHostPort(host, port)}
		if c := u.Query().Get("cipher"); c != "" {
			n, err := strconv.Atoi(c)
			if err != nil {
				return BMC{}, fmt.Errorf("bmc %q: cipher %q is not a number", s, c)
			}
			b.CipherSuite = n
		}
	case "redfish", "redfish+https", "redfish+http":
		scheme := "https"
		if u.Scheme == "redfish+http" {
			scheme = "http"
		}
		b = BMC{Driver: Redfish, Address: scheme + "://" + u.Host, System: strings.Trim(u.Path, "/")}
	default:
		return BMC{}, fmt.Errorf("bmc %q: scheme %q: want ipmi, redfish or redfish+http", s, u.Scheme)
	}
	return b, errors.Join(b.addressErrors()...)
}

// Validate checks the BMC, naming the field.
func (b BMC) Validate() error {
	errs := b.addressErrors()
	if b.Username == "" {
		errs = append(errs, errors.New("bmc username: required"))
	}
	if b.Password == "" {
		errs = append(errs, errors.New("bmc password: required"))
	}
	if strings.ContainsAny(b.Username, "\x00\r\n") {
		errs = append(errs, errors.New("bmc username: contains a control character"))
	}
	return errors.Join(errs...)
}

func (b BMC) addressErrors() []error {
	var errs []error
	switch b.Driver {
	case IPMI:
		host, port, err := net.SplitHostPort(b.Address)
		if err != nil || host == "" {
			errs = append(errs, fmt.Errorf("bmc address %q: want HOST:PORT", b.Address))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("bmc address %q: port %q is not 1-65535", b.Address, port))
		}
		if b.CipherSuite < 0 || b.CipherSuite > 19 {
			errs = append(errs, fmt.Errorf("bmc cipher suite %d: want 0 (negotiate) to 19", b.CipherSuite))
		}
		if len(b.Username) > 16 {
			errs = append(errs, fmt.Errorf("bmc username: IPMI allows at most 16 bytes, got %d", len(b.Username)))
		}
		if len(b.Password) > 20 {
			errs = append(errs, errors.New("bmc password: IPMI 2.0 allows at most 20 bytes"))
		}
	case Redfish:
		u, err := url.Parse(b.Address)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			errs = append(errs, fmt.Errorf("bmc address %q: want https://HOST[:PORT]", b.Address))
		}
		if strings.ContainsAny(b.System, "/?#") {
			errs = append(errs, fmt.Errorf("bmc system %q: a ComputerSystem Id has no / ? or #", b.System))
		}
	default:
		errs = append(errs, fmt.Errorf("bmc driver %q: want ipmi or redfish", b.Driver))
	}
	return errs
}

// Drivers powers machines through their BMCs, each call bounded by
// Timeout.
type Drivers struct {
	Timeout time.Duration // each call, default 30s
	Log     *slog.Logger
}

// driver is one BMC protocol.
type driver interface {
	set(ctx context.Context, a Action) error
	state(ctx context.Context) (State, error)
	close()
}

func (d *Drivers) timeout() time.Duration {
	if d.Timeout <= 0 {
		return 30 * time.Second
	}
	return d.Timeout
}

func (d *Drivers) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func (d *Drivers) open(ctx context.Context, b BMC) (driver, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	switch b.Driver {
	case IPMI:
		return openIPMI(ctx, b, d.timeout())
	default:
		return openRedfish(ctx, b, d.timeout())
	}
}

// bounded runs fn with ctx bounded by the timeout and returns when either
// is done: a BMC that never answers cannot hang the caller even if the
// library under fn ignores ctx.
func (d *Drivers) bounded(ctx context.Context, b BMC, what string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		if err != nil && ctx.Err() != nil {
			// The library's own timeout or the context's: same cause.
			return fmt.Errorf("%s through %s: no answer within %s: %w", what, b, d.timeout(), err)
		}
		if err != nil {
			return fmt.Errorf("%s through %s: %w", what, b, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s through %s: no answer within %s: %w", what, b, d.timeout(), ctx.Err())
	}
}

// Set performs a power action. Cycle powers a machine that is off on (as
// IPMI's power cycle would not).
func (d *Drivers) Set(ctx context.Context, b BMC, a Action) error {
	if _, err := ParseAction(string(a)); err != nil {
		return err
	}
	return d.bounded(ctx, b, "power "+string(a), func(ctx context.Context) error {
		drv, err := d.open(ctx, b)
		if err != nil {
			return err
		}
		defer drv.close()
		if err := drv.set(ctx, a); err != nil {
			return err
		}
		d.log().Info("power action", "bmc", b.String(), "action", string(a))
		return nil
	})
}

// State reads the machine's power state.
func (d *Drivers) State(ctx context.Context, b BMC) (State, error) {
	var st State
	err := d.bounded(ctx, b, "power status", func(ctx context.Context) error {
		drv, err := d.open(ctx, b)
		if err != nil {
			return err
		}
		defer drv.close()
		st, err = drv.state(ctx)
		return err
	})
	return st, err
}
