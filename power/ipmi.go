package power

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// ipmiDriver is an RMCP+ (IPMI 2.0, ipmitool's lanplus) session at
// operator privilege.
type ipmiDriver struct {
	c *client.Client
}

func openIPMI(ctx context.Context, b BMC, timeout time.Duration) (*ipmiDriver, error) {
	host, p, _ := net.SplitHostPort(b.Address) // Validate checked it
	port, _ := strconv.Atoi(p)
	c, err := client.NewClient(host, port, b.Username, b.Password)
	if err != nil {
		return nil, fmt.Errorf("ipmi client: %w", err)
	}
	// A lost UDP datagram is retried within the call's timeout.
	per := timeout / 4
	if per > 5*time.Second {
		per = 5 * time.Second
	}
	c.WithInterface(client.InterfaceLanplus).WithTimeout(per).WithRetry(2).WithMaxPrivilegeLevel(types.PrivilegeLevelOperator)
	if b.CipherSuite != 0 {
		c.WithCipherSuiteID(types.CipherSuiteID(b.CipherSuite))
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("ipmi session (user %q): %w", b.Username, err)
	}
	return &ipmiDriver{c: c}, nil
}

func (d *ipmiDriver) close() { d.c.Close(context.Background()) }

func (d *ipmiDriver) state(ctx context.Context) (State, error) {
	st, err := d.c.GetChassisStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("get chassis status: %w", err)
	}
	if st.PowerIsOn {
		return StateOn, nil
	}
	return StateOff, nil
}

func (d *ipmiDriver) control(ctx context.Context, c chassis.ChassisControl, name string) error {
	if _, err := d.c.ChassisControl(ctx, c); err != nil {
		return fmt.Errorf("chassis control %s: %w", name, err)
	}
	return nil
}

// set: a cycle is power down, waiting until the BMC reports off, then
// power up (Ironic's hard reboot): a BMC's own power cycle does nothing
// to a machine that is off and some BMCs reject it then.
func (d *ipmiDriver) set(ctx context.Context, a Action) error {
	switch a {
	case On:
		return d.control(ctx, chassis.ChassisControlPowerUp, "power up")
	case Off:
		return d.control(ctx, chassis.ChassisControlPowerDown, "power down")
	}
	if err := d.control(ctx, chassis.ChassisControlPowerDown, "power down"); err != nil {
		return err
	}
	if err := waitState(ctx, d.state, StateOff); err != nil {
		return err
	}
	return d.control(ctx, chassis.ChassisControlPowerUp, "power up")
}

// waitState polls until the machine reports want or ctx ends.
func waitState(ctx context.Context, state func(context.Context) (State, error), want State) error {
	var last State
	var lastErr error
	for {
		st, err := state(ctx)
		if err == nil && st == want {
			return nil
		}
		last, lastErr = st, err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("waiting for power %s: %w", want, lastErr)
			}
			return fmt.Errorf("waiting for power %s: still %s: %w", want, last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
