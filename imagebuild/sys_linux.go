package imagebuild

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// SysProcs finds processes through /proc (Proc, /proc when empty).
type SysProcs struct {
	Proc string
}

var _ Procs = SysProcs{}

// InRoot lists the processes whose /proc/PID/root is root or below it.
func (p SysProcs) InRoot(root string) ([]int, error) {
	proc := p.Proc
	if proc == "" {
		proc = "/proc"
	}
	root = filepath.Clean(root)
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		r, err := os.Readlink(filepath.Join(proc, e.Name(), "root"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		if r == root || strings.HasPrefix(r, root+"/") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Signal sends sig to pid.
func (SysProcs) Signal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
