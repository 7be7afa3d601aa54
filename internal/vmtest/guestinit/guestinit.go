// Package guestinit holds what the VM tests' own init programs (built
// into a test initramfs in place of imprint's ramdisk-init) share.
package guestinit

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
)

// LoadModules loads mods and then the modules listed in the ramdisk's
// /etc/imprint/modules.conf (one a line, # comments) with u-root's
// modprobe; a built-in module fails harmlessly.
func LoadModules(mods ...string) {
	if f, err := os.Open("/etc/imprint/modules.conf"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := strings.TrimSpace(sc.Text()); m != "" && !strings.HasPrefix(m, "#") {
				mods = append(mods, m)
			}
		}
		f.Close()
	}
	for _, m := range mods {
		exec.Command("/bbin/modprobe", m).Run()
	}
}
