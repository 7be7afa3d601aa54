package inventory

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// collectNICs lists the network interfaces backed by a device (a PCI, USB,
// virtio or platform NIC): lo and purely virtual interfaces (bridges,
// bonds, VLANs, ifb, veth, which have no device link) are left out, so the
// MACs a controller matches a node by are the hardware ones.
func collectNICs(opts Options) []NIC {
	s := sysfs{root: opts.SysRoot}
	dir := s.path("class", "net")
	nics := []NIC{}
	for _, name := range listDir(dir) {
		if name == "lo" {
			continue
		}
		nd := filepath.Join(dir, name)
		if _, err := os.Stat(filepath.Join(nd, "device")); err != nil {
			opts.Log.Debug("inventory: skip virtual interface", "nic", name)
			continue
		}
		n := NIC{Name: name, MAC: s.attrTrim(nd, "address")}
		// carrier and speed fail with EINVAL while the interface is down.
		n.Link = s.attrTrim(nd, "carrier") == "1"
		if v, ok := s.attrInt(nd, "speed"); ok && v > 0 {
			n.SpeedMbps = int(v)
		}
		if t, err := os.Readlink(filepath.Join(nd, "device", "driver")); err == nil {
			n.Driver = filepath.Base(t)
		}
		nics = append(nics, n)
	}
	return nics
}

// collectCPU reads /proc/cpuinfo (model, logical CPUs) and the sysfs
// topology (sockets: distinct physical_package_id; cpuinfo's "physical id"
// when the topology is missing).
func collectCPU(opts Options) CPU {
	c := CPU{Arch: runtime.GOARCH}
	b, err := os.ReadFile(filepath.Join(opts.ProcRoot, "cpuinfo"))
	if err != nil {
		opts.Log.Warn("inventory: cpu not read", "err", err)
	}
	sockets := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			c.Count++
		case "model name", "Model", "cpu model", "uarch":
			if c.Model == "" {
				c.Model = v
			}
		case "physical id":
			sockets[v] = true
		}
	}
	s := sysfs{root: opts.SysRoot}
	pkgs := map[string]bool{}
	cpus := s.path("devices", "system", "cpu")
	for _, e := range listDir(cpus) {
		if n, ok := strings.CutPrefix(e, "cpu"); !ok || n == "" || strings.Trim(n, "0123456789") != "" {
			continue
		}
		if v := s.attrTrim(filepath.Join(cpus, e), "topology/physical_package_id"); v != "" && v != "-1" {
			pkgs[v] = true
		}
	}
	switch {
	case len(pkgs) > 0:
		c.Sockets = len(pkgs)
	case len(sockets) > 0:
		c.Sockets = len(sockets)
	}
	return c
}

// collectMemory reads MemTotal from /proc/meminfo: the RAM the kernel
// manages, a little below what is installed.
func collectMemory(opts Options) Memory {
	b, err := os.ReadFile(filepath.Join(opts.ProcRoot, "meminfo"))
	if err != nil {
		opts.Log.Warn("inventory: memory not read", "err", err)
		return Memory{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return Memory{TotalBytes: kb * 1024}
	}
	opts.Log.Warn("inventory: no MemTotal in meminfo")
	return Memory{}
}

// collectDMI reads the system identity; unreadable files (product_serial
// and product_uuid are root-only, VMs may have no DMI) stay empty.
func collectDMI(opts Options) DMI {
	s := sysfs{root: opts.SysRoot}
	dir := s.path("class", "dmi", "id")
	return DMI{
		Vendor:  s.attrTrim(dir, "sys_vendor"),
		Product: s.attrTrim(dir, "product_name"),
		Serial:  s.attrTrim(dir, "product_serial"),
		UUID:    s.attrTrim(dir, "product_uuid"),
	}
}
