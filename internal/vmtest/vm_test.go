//go:build vm

package vmtest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/imprint-dev/imprint/api"
)

// TestVMBoot boots the bootstrap ramdisk with two disks and checks the
// agent's API: /healthz without auth, /v1/inventory only with the token,
// listing the virtual disks with their sizes and serials.
func TestVMBoot(t *testing.T) {
	disks := []Disk{{Size: 1 << 30, Serial: "IMPRINT-VDA"}, {Size: 512 << 20, Serial: "IMPRINT-VDB"}}
	vm := Start(t, Options{Disks: disks})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	anon := &api.Client{URL: vm.BaseURL}
	if err := anon.Healthz(ctx); err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	var se *api.ResponseError
	if _, err := anon.Inventory(ctx); !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/inventory without token: err = %v, want HTTP 401", err)
	}

	inv, err := vm.Client.Inventory(ctx)
	if err != nil {
		t.Fatalf("GET /v1/inventory: %v", err)
	}
	type disk struct {
		Name   string
		Size   int64
		Serial string
	}
	var got []disk
	for _, d := range inv.Disks {
		got = append(got, disk{d.Name, d.SizeBytes, d.Serial})
	}
	want := []disk{{"vda", 1 << 30, "IMPRINT-VDA"}, {"vdb", 512 << 20, "IMPRINT-VDB"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory disks (-want +got):\n%s", diff)
	}
	if len(inv.NICs) == 0 {
		t.Errorf("inventory lists no NIC")
	}

	// The ramdisk's steps ran and logged on the console.
	console := vm.Console()
	for _, s := range []string{"step=mounts", "step=modules", "crng ready", "dhcp lease", "bootstrap done"} {
		if !strings.Contains(console, s) {
			t.Errorf("serial console lacks %q", s)
		}
	}

	if err := vm.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestVMBrokenGuest: a guest that cannot come up fails within a bounded
// time, classified, with the serial log attached — never by the deadline.
func TestVMBrokenGuest(t *testing.T) {
	tests := []struct {
		name    string
		cmdline []string
		want    BootErrorKind
		inTail  string
	}{
		// The agent rejects its configuration and exits; ramdisk-init
		// reports it and powers off.
		{"agent exits", []string{"imprint.listen=not-a-listen-address"}, AgentExited, "imprint agent exited"},
		// ramdisk-init refuses an ip= it cannot parse before any step.
		{"bad ip=", []string{"ip=10.0.2.15:::not-a-netmask"}, AgentExited, "imprint ramdisk-init failed"},
		// No init in the initramfs: the kernel panics (panic=-1, -no-reboot).
		{"kernel panic", []string{"rdinit=/does-not-exist"}, KernelPanic, "Kernel panic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Boot(t, Options{Cmdline: tt.cmdline, BootTimeout: 150 * time.Second})
			if err == nil {
				vm.Stop()
				t.Fatalf("Boot with %v succeeded, want a %s", tt.cmdline, tt.want)
			}
			var be *BootError
			if !errors.As(err, &be) {
				t.Fatalf("Boot error = %v, want a *BootError", err)
			}
			t.Logf("failed as expected after %.1fs: %s: %s", be.Elapsed.Seconds(), be.Kind, be.Detail)
			if be.Kind != tt.want {
				t.Errorf("kind = %q, want %q\n%v", be.Kind, tt.want, err)
			}
			if !strings.Contains(be.Tail, tt.inTail) {
				t.Errorf("serial tail lacks %q:\n%s", tt.inTail, be.Tail)
			}
		})
	}
}
