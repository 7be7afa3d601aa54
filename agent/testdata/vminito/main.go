// Command vminito is the VM test's /inito: u-root's init runs /inito (when
// present) and waits for it before starting /bin/uinit (imprint
// ramdisk-init). It loads the storage modules, then runs
// `imprint provision` on each document named in /vmtest/docs, printing
// "vmtest-provision NAME exit=N" on the console, and returns, so the
// ramdisk then boots on as usual: it starts /bin/uinit itself (the agent
// comes up, the test harness sees its ready line and powers the guest off).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/internal/vmtest/guestinit"
)

func main() {
	os.Setenv("PATH", "/bbin:/bin:/sbin:/usr/sbin:/usr/bin")
	guestinit.LoadModules("virtio_pci", "virtio_blk")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat("/dev/vda"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	docs, _ := os.ReadFile("/vmtest/docs")
	for _, name := range strings.Fields(string(docs)) {
		cmd := exec.Command("/bbin/imprint", "provision", "--input", "/vmtest/"+name,
			"--kernel-cmdline", "", "--token-file", "", "--log-format", "text", "--state-dir", "/tmp/vmtest-state",
			"--file-images") // the test's images are files in the ramdisk
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		code := 0
		if err := cmd.Run(); err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		fmt.Printf("vmtest-provision %s exit=%d\n", name, code)
	}
	// u-root's init runs only /inito when it exists: start the ramdisk's
	// uinit as our child (we are PID 1 of the namespace, as it requires).
	uinit := exec.Command("/bin/uinit", "--i-am-the-ramdisk")
	uinit.Stdin, uinit.Stdout, uinit.Stderr = os.Stdin, os.Stdout, os.Stderr
	uinit.Run()
}
