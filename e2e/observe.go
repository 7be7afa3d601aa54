package e2e

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/internal/vmtest"
)

// observeScript prints one "key value" line per fact; the parser is
// parseObserved (table-tested).
const observeScript = `echo "hostname $(hostname)"
echo "systemtype $(cat /etc/nailgun_systemtype 2>/dev/null)"
lvs --noheadings --nosuffix --units m -o vg_name,lv_name,lv_size 2>/dev/null | while read -r vg lv size; do echo "lv $vg/$lv ${size%.*}"; done
for m in / /boot; do findmnt -n -o TARGET,SOURCE,FSTYPE "$m" | sed 's/^/mount /'; done
echo "cloudinit $(timeout 120 cloud-init status --wait 2>/dev/null | tail -n 1 | sed 's/^status: //')"
echo "datasource $(grep -o '"datasource": *"[^"]*"' /run/cloud-init/status.json 2>/dev/null | head -n 1 | sed 's/^"datasource": *"//; s/"$//')"
grep -E ' (WARNING|ERROR|CRITICAL)' /var/log/cloud-init.log 2>/dev/null | tail -n 8 | sed 's/^/cloudinit_problem /'
if [ -d /sys/firmware/efi ]; then echo "bootmode uefi"; else echo "bootmode bios"; fi
echo "secureboot $(mokutil --sb-state 2>&1 | head -n 1)"
efibootmgr -v 2>/dev/null | sed -n 's/^BootOrder: /bootorder /p; s/^\(Boot[0-9A-Fa-f]\{4\}\)/bootentry \1/p'
`

// observe logs into the provisioned OS with the key the controller
// provisioned (retrying while sshd comes up) and reads what it is.
func observe(ctx context.Context, key string, port int) (Observed, error) {
	var out []byte
	var err error
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err = sshOutput(ctx, key, port, observeScript)
		if err == nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			return Observed{}, ctx.Err()
		}
	}
	if err != nil {
		return Observed{}, err
	}
	return parseObserved(string(out)), nil
}

func parseObserved(s string) Observed {
	var o Observed
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		v = strings.TrimSpace(v)
		switch k {
		case "hostname":
			o.Hostname = v
		case "systemtype":
			o.SystemType = v
		case "lv":
			o.LogicalVolumes = append(o.LogicalVolumes, strings.Join(strings.Fields(v), " "))
		case "mount":
			o.Mounts = append(o.Mounts, strings.Join(strings.Fields(v), " "))
		case "cloudinit":
			o.CloudInit = v
		case "datasource":
			o.Datasource = v
		case "cloudinit_problem":
			o.CloudInitProblems = append(o.CloudInitProblems, v)
		case "bootmode":
			o.BootMode = v
		case "secureboot":
			o.SecureBoot = v
		case "bootorder":
			o.BootOrder = v
		case "bootentry":
			o.BootEntries = append(o.BootEntries, v)
		}
	}
	return o
}

func sshOutput(ctx context.Context, key string, port int, script string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := vmtest.SSH(cctx, "127.0.0.1:"+strconv.Itoa(port), key, script)
	return []byte(out), err
}

func sshRun(ctx context.Context, key string, port int, command string) error {
	_, err := sshOutput(ctx, key, port, command)
	return err
}
