package vmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imprint-dev/imprint/internal/testenv"
)

// NetNS is a network namespace of the test's own, holding one tap device
// a guest's NIC is plugged into: a real layer-2 segment where the test
// runs real servers (dnsmasq's DHCPv4/DHCPv6/router advertisements, an
// HTTP server) that QEMU's user networking cannot stand in for. The
// host's own interfaces are never touched: the namespace, its tap and
// its processes go away in t.Cleanup.
type NetNS struct {
	Name string // ip netns name
	Tap  string // the tap device in it (the guest's NIC's -netdev tap,ifname=)
	t    testing.TB
}

// RequireNetNS creates a namespace with a tap device "tap0" up and the
// given addresses (CIDR, IPv4 or IPv6) on it. It needs root, ip(8) and
// the kernel's tun and netns support (testenv: fails under CI=true, skips
// elsewhere).
func RequireNetNS(t testing.TB, addrs ...string) *NetNS {
	t.Helper()
	testenv.RequireRoot(t, "network namespaces, tap devices")
	testenv.RequireTool(t, "ip", "sysctl")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testenv.Skipf(t, "tap devices need /dev/net/tun: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	ns := &NetNS{Name: "imprint-" + hex.EncodeToString(b), Tap: "tap0", t: t}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		testenv.Skipf(t, "ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Logf("vmtest: ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	cmds := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "tuntap", "add", "dev", ns.Tap, "mode", "tap"},
		// No duplicate address detection: the addresses are usable at
		// once (the guest is the only other host on the segment).
		{"sysctl", "-qw", "net.ipv6.conf." + ns.Tap + ".accept_dad=0"},
	}
	for _, a := range addrs {
		c := []string{"ip", "addr", "add", a, "dev", ns.Tap}
		if strings.Contains(a, ":") {
			c = append(c, "nodad")
		}
		cmds = append(cmds, c)
	}
	cmds = append(cmds, []string{"ip", "link", "set", ns.Tap, "up"})
	for _, c := range cmds {
		if out, err := ns.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("vmtest: netns %s: %s: %v: %s", ns.Name, strings.Join(c, " "), err, out)
		}
	}
	return ns
}

// Command is name args run inside the namespace (ip netns exec).
func (ns *NetNS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Listen opens a TCP listener inside the namespace (the socket belongs to
// the namespace it was created in; the test process serves it as any
// other). The thread that enters the namespace is locked and, should the
// way back fail, never reused.
func (ns *NetNS) Listen(addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns.Name))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", ns.Name, err)}
			return
		}
		// Free bind: the tap has no carrier until QEMU opens it, and the
		// kernel does not let a socket bind an address of a link that is
		// not up yet.
		lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
				if serr == nil && strings.HasSuffix(network, "6") {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		l, lerr := lc.Listen(context.Background(), "tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked: the goroutine exits and the
			// runtime ends the thread rather than reuse it.
			if l != nil {
				l.Close()
			}
			ch <- result{err: fmt.Errorf("setns back from %s: %w", ns.Name, err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{l, lerr}
	}()
	r := <-ch
	return r.l, r.err
}

// Dnsmasq is a dnsmasq (Debian's dnsmasq-base) serving the namespace's
// tap: DHCP, DHCPv6, router advertisements, as its options say; no DNS
// and no TFTP unless asked for. Its log is kept for the test.
type Dnsmasq struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// Dnsmasq starts dnsmasq in the namespace with opts (long options
// without the leading "--", e.g. "dhcp-range=10.0.3.10,10.0.3.20,1h");
// it is stopped in t.Cleanup.
func (ns *NetNS) Dnsmasq(opts ...string) *Dnsmasq {
	t := ns.t
	t.Helper()
	testenv.RequireTool(t, "dnsmasq")
	args := []string{"dnsmasq", "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--port=0", "--interface=" + ns.Tap, "--bind-interfaces", "--pid-file=", "--user=root", "--group=root", "--log-dhcp",
		"--dhcp-leasefile=" + filepath.Join(t.TempDir(), "leases")}
	for _, o := range opts {
		args = append(args, "--"+o)
	}
	d := &Dnsmasq{done: make(chan struct{})}
	d.cmd = ns.Command(args[0], args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = (*lockedWriter)(d), (*lockedWriter)(d)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t.Logf("vmtest: netns %s: %s", ns.Name, strings.Join(args, " "))
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("vmtest: start dnsmasq: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		t.Logf("vmtest: dnsmasq log:\n%s", d.Log())
	})
	// It is up once it logs its DHCP configuration (or it failed).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !strings.Contains(d.Log(), "DHCP") {
		select {
		case <-d.done:
			t.Fatalf("vmtest: dnsmasq exited: %s", d.Log())
		case <-ctx.Done():
			t.Fatalf("vmtest: dnsmasq not up after 10s: %s", d.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return d
}

type lockedWriter Dnsmasq

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(p)
}

// Log is what dnsmasq logged so far.
func (d *Dnsmasq) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}
