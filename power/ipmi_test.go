package power_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/ipmisim"
	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/power"
)

// TestIPMIAgainstIPMISim drives OpenIPMI's ipmi_sim over IPMI-over-LAN
// (RMCP+): its machine is a sleep process it starts on power on and kills
// on power off. ipmitool against the same BMC must agree at each step.
func TestIPMIAgainstIPMISim(t *testing.T) {
	testenv.RequireTool(t, "ipmi_sim", "ipmitool")
	sim, err := ipmisim.Start(ipmisim.Config{Dir: t.TempDir(), StartCmd: "sleep 3600", PowerOffWait: time.Second, KillWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	ctx := context.Background()
	d := &power.Drivers{Timeout: 20 * time.Second}
	bmc := sim.BMC()
	check := func(step string, want power.State) {
		t.Helper()
		// Power off goes through the grace period: poll briefly.
		var got power.State
		var tool string
		for i := 0; i < 40; i++ {
			if got, err = d.State(ctx, bmc); err != nil {
				t.Fatalf("%s: state: %v", step, err)
			}
			if tool, err = sim.PowerStatus(ctx); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if got == want && tool == string(want) {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: driver says %s, ipmitool says %s, want %s", step, got, tool, want)
	}
	check("initially", power.StateOff)
	if err := d.Set(ctx, bmc, power.On); err != nil {
		t.Fatal(err)
	}
	check("after on", power.StateOn)
	if err := d.Set(ctx, bmc, power.Cycle); err != nil {
		t.Fatal(err)
	}
	check("after cycle", power.StateOn)
	if err := d.Set(ctx, bmc, power.Off); err != nil {
		t.Fatal(err)
	}
	check("after off", power.StateOff)
	// A cycle of a machine that is off powers it on.
	if err := d.Set(ctx, bmc, power.Cycle); err != nil {
		t.Fatal(err)
	}
	check("after cycle from off", power.StateOn)

	// A wrong password: a clear error naming the BMC, without the password.
	bad := bmc
	bad.Password = "not-the-password"
	_, err = d.State(ctx, bad)
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if !strings.Contains(err.Error(), bmc.Address) || strings.Contains(err.Error(), bad.Password) {
		t.Errorf("wrong password: %v; want the BMC's address and not the password", err)
	}
	t.Logf("wrong password: %v", err)
}

// TestIPMITimeout: a BMC that never answers (a UDP port nobody reads)
// fails within the timeout, naming the BMC.
func TestIPMITimeout(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // bound, never read: datagrams vanish
	bmc := power.BMC{Driver: power.IPMI, Address: "127.0.0.1:" + strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port), Username: "admin", Password: "pw"}
	d := &power.Drivers{Timeout: 2 * time.Second}
	start := time.Now()
	err = d.Set(context.Background(), bmc, power.On)
	took := time.Since(start)
	if err == nil {
		t.Fatal("a silent BMC: no error")
	}
	if took > 4*time.Second {
		t.Errorf("took %v with a 2s timeout", took)
	}
	if !strings.Contains(err.Error(), bmc.Address) || strings.Contains(err.Error(), "pw") {
		t.Errorf("error %q: want the BMC's address, not the password", err)
	}
	t.Logf("%v after %v", err, took.Round(time.Millisecond))
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, driver, addr, system, err string
	}{
		{in: "ipmi://10.0.0.5", driver: "ipmi", addr: "10.0.0.5:623"},
		{in: "ipmi://127.0.0.1:6230?cipher=3", driver: "ipmi", addr: "127.0.0.1:6230"},
		{in: "redfish://bmc.example:8443/System.Embedded.1", driver: "redfish", addr: "https://bmc.example:8443", system: "System.Embedded.1"},
		{in: "redfish+http://127.0.0.1:8000", driver: "redfish", addr: "http://127.0.0.1:8000"},
		{in: "ipmi://root:calvin@10.0.0.5", err: "credentials go in"},
		{in: "ssh://10.0.0.5", err: `scheme "ssh"`},
		{in: "10.0.0.5", err: "want ipmi://"},
		{in: "ipmi://10.0.0.5:99999", err: "port"},
	} {
		b, err := power.ParseURL(tc.in)
		b.Username, b.Password = "u", "p"
		if err == nil {
			err = b.Validate()
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || b.Driver != tc.driver || b.Address != tc.addr || b.System != tc.system {
			t.Errorf("%s: %+v %v, want %s %s %q", tc.in, b, err, tc.driver, tc.addr, tc.system)
		}
	}
}
