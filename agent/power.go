package agent

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/api"
)

// Power actions.
const (
	ActionReboot   = "reboot"
	ActionPowerOff = "poweroff"
)

// Power implements api.Power: it refuses while a job runs or when disabled,
// and otherwise acts after Delay (so the HTTP answer gets out), after
// syncing the filesystems.
type Power struct {
	// Enabled allows acting on this machine (Config.PowerOff: by default
	// only when running as the ramdisk).
	Enabled bool
	// Busy reports whether a job is running (nil: never).
	Busy   func() bool
	Logger *slog.Logger
	// Delay before acting (default 1s).
	Delay time.Duration
	// Do carries the action out (default: sync, then reboot(2)).
	Do func(action string) error
}

var _ api.Power = (*Power)(nil)

// Reboot implements api.Power.
func (p *Power) Reboot() error { return p.schedule(ActionReboot) }

// PowerOff implements api.Power.
func (p *Power) PowerOff() error { return p.schedule(ActionPowerOff) }

func (p *Power) schedule(action string) error {
	if !p.Enabled {
		return api.ErrPowerDisabled
	}
	if p.Busy != nil && p.Busy() {
		return api.ErrBusy
	}
	do, delay, log := p.Do, p.Delay, p.Logger
	if do == nil {
		do = sysPower
	}
	if delay <= 0 {
		delay = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	go func() {
		time.Sleep(delay)
		log.Warn("power action now", "action", action)
		if err := do(action); err != nil {
			log.Error("power action failed", "action", action, "err", err)
		}
	}()
	return nil
}

// sysPower syncs and reboots or powers off through reboot(2).
func sysPower(action string) error {
	syscall.Sync()
	cmd := syscall.LINUX_REBOOT_CMD_RESTART
	if action == ActionPowerOff {
		cmd = syscall.LINUX_REBOOT_CMD_POWER_OFF
	}
	return syscall.Reboot(cmd)
}
