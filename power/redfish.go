package power

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// redfishDriver is a Redfish client (HTTP basic authentication, as Ironic
// and bmclib default to) bound to one ComputerSystem.
type redfishDriver struct {
	c   *gofish.APIClient
	sys *schemas.ComputerSystem
}

func openRedfish(ctx context.Context, b BMC, timeout time.Duration) (*redfishDriver, error) {
	// The HTTP timeouts are the call's, plus a margin: the call's own
	// bound (Drivers.bounded) reports a silent BMC first.
	timeout += time.Second
	tr := &http.Transport{Proxy: nil, TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout, DisableKeepAlives: true}
	if b.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	c, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint: b.Address, Username: b.Username, Password: b.Password, BasicAuth: true,
		HTTPClient: &http.Client{Transport: tr, Timeout: timeout}, NoModifyTransport: true,
	})
	if err != nil {
		return nil, fmt.Errorf("redfish service root: %w", err)
	}
	systems, err := c.Service.Systems()
	if err != nil {
		c.Logout()
		return nil, fmt.Errorf("redfish systems: %w", err)
	}
	var sys *schemas.ComputerSystem
	for _, s := range systems {
		if b.System == "" || s.ID == b.System {
			if sys != nil {
				c.Logout()
				return nil, fmt.Errorf("redfish systems: the service has several (%s, %s): name one (redfish://host/SYSTEM-ID)", sys.ID, s.ID)
			}
			sys = s
		}
	}
	if sys == nil {
		c.Logout()
		if b.System != "" {
			return nil, fmt.Errorf("redfish systems: no system %q", b.System)
		}
		return nil, fmt.Errorf("redfish systems: the service lists none")
	}
	return &redfishDriver{c: c, sys: sys}, nil
}

func (d *redfishDriver) close() { d.c.Logout() }

func (d *redfishDriver) state(ctx context.Context) (State, error) {
	if err := d.sys.Update(); err != nil {
		return "", fmt.Errorf("redfish system %s: %w", d.sys.ID, err)
	}
	return redfishState(d.sys)
}

func redfishState(s *schemas.ComputerSystem) (State, error) {
	switch s.PowerState {
	case schemas.OnPowerState, schemas.PoweringOffPowerState:
		return StateOn, nil
	case schemas.OffPowerState, schemas.PoweringOnPowerState:
		return StateOff, nil
	}
	return "", fmt.Errorf("redfish system %s: power state %q", s.ID, s.PowerState)
}

func (d *redfishDriver) reset(t schemas.ResetType) error {
	if _, err := d.sys.Reset(t); err != nil {
		return fmt.Errorf("redfish system %s: reset %s: %w", d.sys.ID, t, err)
	}
	return nil
}

// set: a cycle of a machine that is off powers it on; of one that is on,
// ForceRestart (PowerCycle where the service lacks it).
func (d *redfishDriver) set(ctx context.Context, a Action) error {
	switch a {
	case On:
		return d.reset(schemas.OnResetType)
	case Off:
		return d.reset(schemas.ForceOffResetType)
	}
	st, err := redfishState(d.sys)
	if err != nil {
		return err
	}
	if st == StateOff {
		return d.reset(schemas.OnResetType)
	}
	types, _ := d.sys.GetSupportedResetTypes()
	for _, t := range types {
		if t == schemas.ForceRestartResetType {
			return d.reset(t)
		}
	}
	if len(types) > 0 {
		return d.reset(schemas.PowerCycleResetType)
	}
	return d.reset(schemas.ForceRestartResetType)
}
