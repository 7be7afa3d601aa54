package vmtest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/internal/testenv"
	"github.com/imprint-dev/imprint/pxe"
)

// TestNetNS: a listener opened in the namespace answers a client inside
// it (ip netns exec curl) and nothing of it shows in the host's
// namespace; dnsmasq starts on the tap with a DHCPv4 and a DHCPv6 range.
func TestNetNS(t *testing.T) {
	testenv.RequireTool(t, "curl", "dnsmasq")
	ns := RequireNetNS(t, "10.0.3.1/24", "fd00:6::1/64")
	l, err := ns.Listen("[fd00:6::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "inside "+r.RemoteAddr) })}
	go srv.Serve(l)
	defer srv.Close()
	out, err := ns.Command("curl", "-sS", "-m", "5", "http://"+l.Addr().String()+"/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "inside [fd00:6::1]:") {
		t.Errorf("curl inside the namespace: %v: %s", err, out)
	}
	if _, err := http.Get("http://" + l.Addr().String() + "/"); err == nil {
		t.Errorf("the namespace's listener answered from the host's namespace")
	}
	boot, err := pxe.DHCPBoot{Controller: "http://" + l.Addr().String()}.Dnsmasq()
	if err != nil {
		t.Fatal(err)
	}
	// dnsmasq takes pxe.DHCPBoot's options as they are (it exits on a bad one).
	d := ns.Dnsmasq(append([]string{"dhcp-range=10.0.3.10,10.0.3.20,1h", "enable-ra", "dhcp-range=fd00:6::100,fd00:6::1ff,64,1h"}, boot...)...)
	if log := d.Log(); !strings.Contains(log, "DHCP, IP range 10.0.3.10") {
		t.Errorf("dnsmasq log:\n%s", log)
	}
}
