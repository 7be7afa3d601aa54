package bootstrap

import "fmt"

// OnExit is what ramdisk-init does when a step fails or the agent exits.
type OnExit string

const (
	// ExitShell returns to u-root's init, which starts the console shell
	// (the default: an operator at the console can see why).
	ExitShell OnExit = "shell"
	// ExitPoweroff syncs and powers the machine off (the VM tests use it:
	// with -no-reboot QEMU then exits at once).
	ExitPoweroff OnExit = "poweroff"
	// ExitReboot syncs and reboots (PXE then asks the controller again).
	ExitReboot OnExit = "reboot"
	// ExitRestart starts the agent again after a pause.
	ExitRestart OnExit = "restart"
)

// ParseOnExit validates an imprint.on_exit= value.
func ParseOnExit(s string) (OnExit, error) {
	switch o := OnExit(s); o {
	case ExitShell, ExitPoweroff, ExitReboot, ExitRestart:
		return o, nil
	}
	return "", fmt.Errorf("imprint.on_exit=%q: want shell, poweroff, reboot or restart", s)
}
