// Command demo is `make demo`'s driver (scripts/demo.sh builds what it
// needs first): one QEMU node PXE-boots the bootstrap ramdisk, the
// reference controller provisions it with the target image, flips its
// iPXE entry to the local disk and reboots it, the provisioned OS boots and
// phones home, and then the node is reprovisioned. It prints the timeline
// and where the artifacts are.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/imprint-dev/imprint/e2e"
	"github.com/imprint-dev/imprint/internal/vmtest"
)

func main() {
	var cfg e2e.Config
	flag.StringVar(&cfg.Dir, "dir", "build/demo", "work directory (disk, serial log, controller log, SSH key); emptied first")
	flag.StringVar(&cfg.Kernel, "kernel", "build/bootstrap/cloud/vmlinuz", "bootstrap kernel (make initramfs)")
	flag.StringVar(&cfg.Initrd, "initrd", "build/bootstrap/cloud/initramfs.cpio.gz", "bootstrap initramfs")
	flag.StringVar(&cfg.Hostname, "hostname", "demo-node", "the node's hostname in provision.json")
	flag.IntVar(&cfg.Rounds, "rounds", 2, "provisioning rounds (the second one reprovisions)")
	console := flag.Bool("console", false, "also print the node's serial console")
	timeout := flag.Duration("timeout", 90*time.Minute, "the whole run's limit")
	firmware := flag.String("firmware", "bios", "the node's firmware: bios (SeaBIOS, the fastest), uefi (OVMF, iPXE EFI)")
	flag.Parse()
	fw, err := vmtest.ParseFirmware(*firmware)
	if err != nil || fw == vmtest.FirmwareSecureBoot {
		// Secure Boot firmware refuses iPXE's unsigned EFI driver: no PXE.
		fatal(fmt.Errorf("-firmware %q: want bios or uefi", *firmware))
	}
	cfg.Firmware = fw

	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		fatal(err)
	}
	cfg.Dir = abs
	if err := os.RemoveAll(cfg.Dir); err != nil {
		fatal(err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		fatal(err)
	}
	logf, err := os.Create(filepath.Join(cfg.Dir, "controller.log"))
	if err != nil {
		fatal(err)
	}
	defer logf.Close()
	cfg.Logger = slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Out = os.Stdout
	if *console {
		cfg.Console = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	start := time.Now()
	fmt.Println("target image: building or reusing build/target-images/ (bookworm from this machine's apt mirror)")
	ti, err := vmtest.BuildTargetImage(ctx, cfg.Logger.With("component", "build-image"))
	if err != nil {
		fatal(err)
	}
	if ti.Built {
		fmt.Printf("target image built in %s: %s\n", ti.Duration.Round(time.Second), ti.Dir)
	} else {
		fmt.Printf("target image reused: %s\n", ti.Dir)
	}
	cfg.Images = e2e.TargetImages(ti)
	res, err := e2e.Run(ctx, cfg)
	if res != nil {
		fmt.Printf("\nartifacts in %s:\n  disk       %s\n  console    %s\n  controller %s\n  ssh key    %s\n",
			res.Dir, res.Disk, res.SerialLog, logf.Name(), res.SSHKey)
	}
	if err != nil {
		fatal(err)
	}
	for i, r := range res.Rounds {
		fmt.Printf("round %d: %s is a %s node, cloud-init %s; LVs %v; mounts %v\n", i+1,
			r.Observed.Hostname, r.Observed.SystemType, r.Observed.CloudInit, r.Observed.LogicalVolumes, r.Observed.Mounts)
		if r.Observed.BootMode == "uefi" {
			fmt.Printf("round %d: booted UEFI, %s; BootOrder %s; entries:\n", i+1, r.Observed.SecureBoot, r.Observed.BootOrder)
			for _, e := range r.Observed.BootEntries {
				fmt.Printf("  %s\n", e)
			}
		}
	}
	fmt.Printf("demo: done in %s\n", time.Since(start).Round(time.Second))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}
