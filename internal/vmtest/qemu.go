package vmtest

// What every QEMU guest of the tests shares (vmtest's VM and NetVM, e2e's
// Machine): the disks' arguments, starting the process, the human monitor.

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DiskArgs makes the disks' QEMU arguments (-drive, -device) in order and
// returns them with the image paths. A disk without Path gets a new sparse
// image of Size in dir (disk<i>.img); a Path that does not exist is created
// sparse when Size is set, and an error otherwise. bootIndex, when not nil,
// adds to disk i's -device (e.g. ",bootindex=1").
func DiskArgs(dir string, disks []Disk, bootIndex func(i int) string) (paths, args []string, err error) {
	scsi := 0
	for i, d := range disks {
		switch d.Bus {
		case "", BusVirtioBlk, BusSCSI:
		default:
			return nil, nil, fmt.Errorf("vmtest: disk %d: bus %q: want %q or %q", i, d.Bus, BusVirtioBlk, BusSCSI)
		}
		if len(d.Serial) > 20 && d.Bus != BusSCSI {
			return nil, nil, fmt.Errorf("vmtest: disk %d: serial %q longer than virtio-blk's 20 bytes", i, d.Serial)
		}
		if strings.ContainsAny(d.Serial, ",= ") {
			return nil, nil, fmt.Errorf("vmtest: disk %d: serial %q contains ',', '=' or a space", i, d.Serial)
		}
		p := d.Path
		if p == "" {
			p = filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && (d.Path == "" || d.Size > 0) {
			if err := createSparse(p, d.Size); err != nil {
				return nil, nil, fmt.Errorf("vmtest: disk %d: %w", i, err)
			}
		} else if err != nil {
			return nil, nil, fmt.Errorf("vmtest: disk %d: %w", i, err)
		}
		paths = append(paths, p)
		dev := fmt.Sprintf("virtio-blk-pci,drive=d%d", i)
		if d.Bus == BusSCSI {
			if scsi == 0 {
				args = append(args, "-device", "virtio-scsi-pci,id=scsi0")
			}
			dev = fmt.Sprintf("scsi-hd,drive=d%d,bus=scsi0.0,channel=0,scsi-id=%d,lun=0", i, scsi)
			scsi++
		}
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		if d.WWN != "" {
			if d.Bus != BusSCSI || strings.ContainsAny(d.WWN, ",= ") {
				return nil, nil, fmt.Errorf("vmtest: disk %d: wwn %q: only for a SCSI disk, without ',', '=' or a space", i, d.WWN)
			}
			dev += ",wwn=" + d.WWN
		}
		if d.Shared {
			dev += ",share-rw=on"
		}
		if bootIndex != nil {
			dev += bootIndex(i)
		}
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=d%d,format=raw", p, i), "-device", dev)
	}
	return paths, args, nil
}

func createSparse(path string, size int64) error {
	if size <= 0 {
		return fmt.Errorf("%s: no size for a new disk", path)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	return nil
}

// StartQEMU starts QEMU with args, its serial console (-serial stdio) and
// its stderr going to out, killed if the test process dies. exited is
// called from another goroutine with Wait's result when QEMU has exited.
func StartQEMU(args []string, out io.Writer, exited func(error)) (*exec.Cmd, error) {
	return startQEMUIn(nil, args, out, exited)
}

// startQEMUIn is StartQEMU inside ns (ip netns exec, which then execs
// QEMU: the process is QEMU's), or in the test's namespace when ns is nil.
func startQEMUIn(ns *NetNS, args []string, out io.Writer, exited func(error)) (*exec.Cmd, error) {
	cmd := exec.Command(QEMU, args...)
	if ns != nil {
		cmd = ns.Command(QEMU, args...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vmtest: start %s: %w", QEMU, err)
	}
	go func() { exited(cmd.Wait()) }()
	return cmd, nil
}

// HMP runs a command on the QEMU human monitor listening on the unix
// socket sock (-monitor unix:SOCK,server=on,wait=off) and returns its
// output. "quit" returns once sent: QEMU closes the socket as it exits.
func HMP(sock, command string) (string, error) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("vmtest: monitor %s: %w", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	readPrompt := func() (string, error) {
		var sb strings.Builder
		for !strings.HasSuffix(sb.String(), "(qemu) ") {
			b, err := r.ReadByte()
			if err != nil {
				return sb.String(), fmt.Errorf("vmtest: monitor %q: %w (read %q)", command, err, sb.String())
			}
			sb.WriteByte(b)
		}
		return sb.String(), nil
	}
	if _, err := readPrompt(); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		return "", fmt.Errorf("vmtest: monitor %q: %w", command, err)
	}
	if command == "quit" {
		return "", nil
	}
	out, err := readPrompt()
	out = strings.TrimSuffix(out, "(qemu) ")
	// The monitor echoes the command (with terminal escapes); keep the rest.
	if i := strings.Index(out, "\n"); i >= 0 {
		out = out[i+1:]
	}
	return strings.TrimSpace(out), err
}

// randomToken is a fresh agent bearer token.
func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
