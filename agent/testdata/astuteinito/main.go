// Command astuteinito is TestVMFuelSample's /inito: u-root's init runs it
// before the ramdisk's own uinit. It brings up eth0 the way QEMU's user
// network addresses it (10.0.2.15/24 via 10.0.2.2: the test's image
// server), then does what Astute does for each document named in
// /vmtest/docs: upload it as /tmp/provision.json, run
// "flock -n /var/lock/provision.lock provision" in / with the ramdisk's
// PATH, and meanwhile tail /var/log/fuel-agent.log for Astute's
// image-based-provisioning patterns (fuel-astute parser_patterns.rb). It
// prints on the console:
//
//	astute NAME pattern "LINE" progress P   (first match of each pattern)
//	astute NAME chunks N                    ("Next chunk" lines seen)
//	astute-log NAME LINE                    (the log's lines naming a failure)
//	astute NAME exit=N
//
// then starts /bin/uinit so the agent comes up and the harness sees it.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/imprint-dev/imprint/internal/vmtest/guestinit"
)

// patterns are Astute's image-based-provisioning progress patterns.
var patterns = []struct {
	line     string
	progress float64
}{
	{"--- Provisioning (do_provisioning) ---", 0.81},
	{"--- Partitioning disks (do_partitioning) ---", 0.82},
	{"--- Creating configdrive (do_configdrive) ---", 0.92},
	{"--- Installing bootloader (do_bootloader) ---", 0.99},
	{"--- Provisioning END (do_provisioning) ---", 1.0},
}

const logFile = "/var/log/fuel-agent.log"

func run(cmd string, args ...string) {
	c := exec.Command(cmd, args...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		fmt.Printf("astuteinito: %s %v: %v\n", cmd, args, err)
	}
}

func main() {
	path := "/ubin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/bin:/usr/local/sbin:/buildbin:/bbin" // u-root's
	os.Setenv("PATH", path)
	guestinit.LoadModules("virtio_pci", "virtio_blk", "virtio_net", "dm_mod")
	for i := 0; i < 100; i++ {
		_, e1 := os.Stat("/dev/vda")
		_, e2 := os.Stat("/sys/class/net/eth0")
		if e1 == nil && e2 == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	run("/bbin/ip", "link", "set", "dev", "eth0", "up")
	run("/bbin/ip", "addr", "add", "10.0.2.15/24", "dev", "eth0")
	run("/bbin/ip", "route", "add", "default", "via", "10.0.2.2")

	docs, _ := os.ReadFile("/vmtest/docs")
	for _, name := range strings.Fields(string(docs)) {
		if strings.HasPrefix(name, "steps:") {
			// fuel-agent's single steps, each on /tmp/provision.json
			name = strings.TrimPrefix(name, "steps:")
			for _, step := range []string{"fa_partition", "fa_copyimage", "fa_bootloader"} {
				astute(name, path, step)
			}
			continue
		}
		astute(name, path, "flock", "-n", "/var/lock/provision.lock", "provision")
	}
	uinit := exec.Command("/bin/uinit", "--i-am-the-ramdisk")
	uinit.Stdin, uinit.Stdout, uinit.Stderr = os.Stdin, os.Stdout, os.Stderr
	uinit.Run()
}

func astute(name, path string, argv ...string) {
	label := name
	if argv[0] != "flock" {
		label = name + " " + argv[0]
	}
	doc, err := os.ReadFile("/vmtest/" + name)
	if err != nil {
		fmt.Printf("astute %s exit=-2 (%v)\n", name, err)
		return
	}
	if err := os.WriteFile("/tmp/provision.json", doc, 0o600); err != nil {
		fmt.Printf("astute %s exit=-2 (%v)\n", name, err)
		return
	}
	var start int64
	if st, err := os.Stat(logFile); err == nil {
		start = st.Size()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + path, "HOME=/root"}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // Astute keeps them; the log file is what it parses
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tail(label, start, done)
	}()
	code := 0
	if err := cmd.Run(); err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	close(done)
	wg.Wait()
	fmt.Printf("astute %s exit=%d\n", label, code)
}

// tail follows the log from offset until done, then reads what is left.
func tail(name string, offset int64, done <-chan struct{}) {
	seen := map[string]bool{}
	chunks := 0
	var partial string
	readNew := func() {
		f, err := os.Open(logFile)
		if err != nil {
			return
		}
		defer f.Close()
		f.Seek(offset, io.SeekStart)
		b, _ := io.ReadAll(f)
		offset += int64(len(b))
		text := partial + string(b)
		lines := strings.Split(text, "\n")
		partial = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			for _, p := range patterns {
				if !seen[p.line] && strings.Contains(l, p.line) {
					seen[p.line] = true
					fmt.Printf("astute %s pattern %q progress %.2f\n", name, p.line, p.progress)
				}
			}
			if i := strings.Index(l, "--- "); i >= 0 && strings.Contains(l, "(do_") {
				if j := strings.Index(l[i+4:], " ---"); j >= 0 {
					fmt.Printf("astute %s step %q\n", name, l[i:i+4+j+4])
				}
			}
			if strings.Contains(l, "Next chunk") {
				chunks++
			}
			if strings.Contains(l, "failed") || strings.Contains(l, "ERROR") {
				fmt.Printf("astute-log %s %s\n", name, l)
			}
		}
	}
	for {
		select {
		case <-done:
			readNew()
			fmt.Printf("astute %s chunks %d\n", name, chunks)
			return
		case <-time.After(500 * time.Millisecond):
			readNew()
		}
	}
}
