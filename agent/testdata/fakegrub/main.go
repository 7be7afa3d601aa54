// Command fakegrub stands in for grub-install and grub-mkconfig inside the
// VM test's target image (a real grub needs a real OS image). It records its
// argv in /var/log/fakegrub.log, checks that the device it is given exists
// as a block device (proving /dev is bound into the chroot), and for
// grub-mkconfig writes the -o file with the GRUB_CMDLINE_LINUX line it finds
// in /etc/default/grub.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	name := filepath.Base(os.Args[0])
	f, err := os.OpenFile("/var/log/fakegrub.log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(f, strings.Join(append([]string{name}, os.Args[1:]...), " "))
	f.Close()
	args := os.Args[1:]
	switch {
	case strings.HasSuffix(name, "-mkconfig"):
		if len(args) != 2 || args[0] != "-o" {
			fmt.Fprintln(os.Stderr, "usage: grub-mkconfig -o FILE")
			os.Exit(2)
		}
		cmdline := ""
		if d, err := os.Open("/etc/default/grub"); err == nil {
			sc := bufio.NewScanner(d)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "GRUB_CMDLINE_LINUX=") {
					cmdline = sc.Text()
				}
			}
			d.Close()
		}
		os.MkdirAll(filepath.Dir(args[1]), 0o755)
		if err := os.WriteFile(args[1], []byte("# written by fakegrub\n# "+cmdline+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case strings.HasSuffix(name, "-install"):
		dev := args[len(args)-1]
		fi, err := os.Stat(dev)
		if err != nil || fi.Mode()&os.ModeDevice == 0 {
			fmt.Fprintf(os.Stderr, "grub-install: %s is not a block device in the chroot: %v\n", dev, err)
			os.Exit(1)
		}
	}
}
