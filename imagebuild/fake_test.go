package imagebuild

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// fakeExit is a command's non-zero exit.
type fakeExit struct{ code int }

func (e fakeExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }
func (e fakeExit) ExitCode() int { return e.code }

// fakeRunner records commands and plays the tools: losetup hands out
// loop devices, debootstrap writes an os-release into its target,
// dumpe2fs reports a 1 MiB filesystem. fail maps a substring of the
// command line to the exit code it fails with.
type fakeRunner struct {
	mu    sync.Mutex
	cmds  []string
	fail  map[string]int
	loops int
	// xfsContent is what the files take in the xfs images xfs_db reads
	// (probes, named *.probe, are empty); their overhead is mkfs.xfs's
	// for 4 AGs: a 64 MiB log and 32 blocks of headers.
	xfsContent int64
	// onRun is called with each command line before it is played.
	onRun func(line string)
}

func (f *fakeRunner) RunCmd(_ context.Context, c Cmd) ([]byte, error) {
	f.mu.Lock()
	line := strings.Join(c.Argv, " ")
	f.cmds = append(f.cmds, line)
	onRun := f.onRun
	f.mu.Unlock()
	if onRun != nil {
		onRun(line)
	}
	for sub, code := range f.fail {
		if strings.Contains(line, sub) {
			return []byte("fake failure of " + sub), fmt.Errorf("%s: %w", line, fakeExit{code})
		}
	}
	switch c.Argv[0] {
	case "losetup":
		if c.Argv[1] == "--find" {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.loops++
			return []byte(fmt.Sprintf("/dev/loop%d\n", f.loops+6)), nil
		}
	case "debootstrap":
		target := c.Argv[len(c.Argv)-2]
		if !strings.Contains(line, "--make-tarball") {
			os.MkdirAll(filepath.Join(target, "etc"), 0o755)
			os.WriteFile(filepath.Join(target, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\n"), 0o644)
			os.WriteFile(filepath.Join(target, "etc/debian_version"), []byte("12.10\n"), 0o644)
		}
	case "xfs_db":
		fi, err := os.Stat(c.Argv[len(c.Argv)-1])
		if err != nil {
			return nil, err
		}
		d := fi.Size() / 4096
		fd := d - 16416
		if !strings.HasSuffix(c.Argv[len(c.Argv)-1], ".probe") {
			fd -= f.xfsContent / 4096
		}
		return []byte(fmt.Sprintf("blocksize = 4096\ndblocks = %d\nfdblocks = %d\n", d, fd)), nil
	case "dumpe2fs":
		return []byte("Block count:              256\nBlock size:               4096\n"), nil
	}
	return nil, nil
}

func (f *fakeRunner) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

// fakeMounter keeps a mount table; busy makes the next Unmount of a
// target fail with EBUSY that many times.
type fakeMounter struct {
	mu     sync.Mutex
	mounts []string
	log    []string
	busy   map[string]int
}

func (m *fakeMounter) Mount(source, target, fstype string, bind bool, data string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mounts = append(m.mounts, target)
	if data != "" {
		target += " -o " + data
	}
	m.log = append(m.log, "mount "+target)
	return nil
}

func (m *fakeMounter) Unmount(target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[target] > 0 {
		m.busy[target]--
		m.log = append(m.log, "busy "+target)
		return syscall.EBUSY
	}
	for i := len(m.mounts) - 1; i >= 0; i-- {
		if m.mounts[i] == target {
			m.mounts = append(m.mounts[:i], m.mounts[i+1:]...)
			m.log = append(m.log, "umount "+target)
			return nil
		}
	}
	return syscall.EINVAL
}

func (m *fakeMounter) MountedUnder(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, mp := range m.mounts {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// fakeProcs has a set of processes in chroots that die on SIGTERM unless
// stubborn.
type fakeProcs struct {
	mu       sync.Mutex
	procs    map[int]string // pid → root
	stubborn map[int]bool
	signals  []string
}

func (p *fakeProcs) InRoot(root string) ([]int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for pid, r := range p.procs {
		if r == root || strings.HasPrefix(r, root+"/") {
			out = append(out, pid)
		}
	}
	return out, nil
}

func (p *fakeProcs) Signal(pid int, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.signals = append(p.signals, fmt.Sprintf("%d %v", pid, sig))
	if sig == syscall.SIGKILL || !p.stubborn[pid] {
		delete(p.procs, pid)
	}
	return nil
}

var (
	_ Runner  = (*fakeRunner)(nil)
	_ Mounter = (*fakeMounter)(nil)
	_ Procs   = (*fakeProcs)(nil)
)
