package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/controller"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

// ExtraNode is what a second (third, ...) node of the run did: it boots and
// is provisioned by the same controller at the same time as the main node,
// then is flipped to local boot and stopped once its firmware fetched the
// local-boot script (its OS is not booted: the main node proves that, and
// TCG time is dear).
type ExtraNode struct {
	MAC, Hostname string
	// Discovered and Provisioned are the controller's events of the node.
	Discovered, Provisioned, Local controller.Event
	Err                            error
}

// extraMAC is the MAC of extra node i (1-based) next to the main one.
func extraMAC(main string, i int) string {
	hw, err := net.ParseMAC(main)
	if err != nil || len(hw) != 6 {
		return ""
	}
	hw = append(net.HardwareAddr(nil), hw...)
	hw[5] += byte(i)
	return hw.String()
}

// extraNodes are the controller's nodes of the extra machines, each with
// its own agent port forward.
type extraNodes struct {
	cfg   Config
	nodes []controller.Node
	ports []int
	res   []ExtraNode
	wg    sync.WaitGroup
	mu    sync.Mutex
	ms    []*Machine
}

func newExtraNodes(cfg Config, pub string) (*extraNodes, error) {
	x := &extraNodes{cfg: cfg}
	for i := 1; i <= cfg.ExtraNodes; i++ {
		port, err := vmtest.FreePort()
		if err != nil {
			return nil, err
		}
		n := controller.Node{MAC: extraMAC(cfg.MAC, i), Hostname: fmt.Sprintf("%s-%d", cfg.Hostname, i+1), SSHKeys: []string{pub},
			AgentURL: fmt.Sprintf("http://127.0.0.1:%d", port), Cmdline: []string{"console=ttyS0"}}
		x.nodes = append(x.nodes, n)
		x.ports = append(x.ports, port)
		x.res = append(x.res, ExtraNode{MAC: n.MAC, Hostname: n.Hostname})
	}
	return x, nil
}

// start boots the extra machines and follows each in the background until
// its local boot (or a failure), then stops it.
func (x *extraNodes) start(ctx context.Context, ctrl *controller.Controller, tftp string, tl *timeline) error {
	for i, n := range x.nodes {
		dir := filepath.Join(x.cfg.Dir, "node-"+n.Hostname)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		m, err := StartMachine(MachineConfig{
			Dir: dir, MAC: n.MAC, UUID: nodeUUID(n.MAC), TFTPDir: tftp, BootFile: "boot.ipxe",
			Disks:   []Disk{{Path: filepath.Join(dir, "disk0.img"), Size: x.cfg.DiskSize, Serial: diskSerial}},
			Forward: map[int]int{x.ports[i]: guestAgentPort},
			CPUs:    1, // the second node's work is kept small: TCG shares 2 cores
			Console: nil, Firmware: x.cfg.Firmware, Vars: filepath.Join(dir, "OVMF_VARS.fd"),
		})
		if err != nil {
			return fmt.Errorf("e2e: node %s: %w", n.Hostname, err)
		}
		x.mu.Lock()
		x.ms = append(x.ms, m)
		x.mu.Unlock()
		tl.step("machine started", fmt.Sprintf("second node %s (%s) on the same controller, at the same time", n.Hostname, n.MAC))
		x.wg.Add(1)
		go func() {
			defer x.wg.Done()
			defer m.Stop(30 * time.Second)
			r := &x.res[i]
			wait := func(p controller.Phase, d time.Duration) (controller.Event, error) {
				wctx, cancel := context.WithTimeout(ctx, d)
				defer cancel()
				return waitEvent(wctx, ctrl.Events, m, n.MAC, p, 0)
			}
			fail := func(phase string, err error) {
				r.Err = fmt.Errorf("node %s: %s: %w\n--- its serial console (tail) ---\n%s", n.Hostname, phase, err, m.Tail(40))
			}
			var err error
			if r.Discovered, err = wait(controller.PhaseDiscovered, x.cfg.Timeouts.PXE+x.cfg.Timeouts.Agent); err != nil {
				fail("agent up", err)
				return
			}
			if r.Provisioned, err = wait(controller.PhaseProvisioned, x.cfg.Timeouts.Provision); err != nil {
				fail("provisioning", err)
				return
			}
			if r.Local, err = wait(controller.PhaseLocal, x.cfg.Timeouts.Reboot); err != nil {
				fail("reboot to local boot", err)
				return
			}
		}()
	}
	return nil
}

// wait waits for every extra node's follower and returns their results.
func (x *extraNodes) wait() []ExtraNode {
	x.wg.Wait()
	return x.res
}

// stop stops every extra machine still running.
func (x *extraNodes) stop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range x.ms {
		m.Stop(30 * time.Second)
	}
}
