package vmtest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// PhoneHome records cloud-init phone_home POSTs (cc_phone_home: a form
// with instance_id, hostname, fqdn and the pub_key_* host keys).
type PhoneHome struct {
	mu    sync.Mutex
	posts []url.Values
	got   chan struct{} // closed at the first post
	once  sync.Once
}

// NewPhoneHome returns an empty recorder.
func NewPhoneHome() *PhoneHome { return &PhoneHome{got: make(chan struct{})} }

// PhoneHome registers a recorder at path (its guest URL is
// s.GuestURL(path): the document's ks_meta.phone_home_url).
func (s *HostServer) PhoneHome(path string) *PhoneHome {
	p := NewPhoneHome()
	s.Handle(path, p)
	return p
}

// ServeHTTP records a POST and answers 200 (cloud-init retries otherwise).
func (p *PhoneHome) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "not a form: "+err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.posts = append(p.posts, form)
	p.mu.Unlock()
	p.once.Do(func() { close(p.got) })
	w.WriteHeader(http.StatusOK)
}

// Posts returns the forms received so far.
func (p *PhoneHome) Posts() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.posts...)
}

// WaitPhoneHome waits at most d for p's first POST while the guest runs. A
// kernel panic on the console or QEMU exiting ends the wait at once; every
// failure is a *BootError carrying the console's tail.
func (vm *VM) WaitPhoneHome(p *PhoneHome, d time.Duration) (url.Values, error) {
	t0 := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	fail := func(kind BootErrorKind, detail string) error {
		return &BootError{Kind: kind, Detail: detail, Elapsed: time.Since(vm.started), Tail: vm.Tail(80)}
	}
	for {
		select {
		case <-p.got:
			return p.Posts()[0], nil
		case ev := <-vm.console.events:
			if ev.kind == panicMarker {
				select {
				case <-vm.exited:
				case <-time.After(3 * time.Second):
				}
				return nil, fail(KernelPanic, ev.line)
			}
		case <-vm.exited:
			return nil, fail(QEMUExited, fmt.Sprintf("%v before cloud-init phoned home", vm.waitErr))
		case <-deadline.C:
			return nil, fail(BootTimeout, fmt.Sprintf("no phone_home POST within %v", time.Since(t0).Round(time.Second)))
		}
	}
}

// BootDisk boots a provisioned disk image (DiskBoot: firmware, grub, the
// OS's kernel) and waits for the kernel's banner on the serial console
// (the OS's kernel_params must have console=ttyS0), at most timeout.
func BootDisk(t testing.TB, disk string, timeout time.Duration) *VM {
	t.Helper()
	return Start(t, Options{DiskBoot: true, Disks: []Disk{{Path: disk}}, Ready: KernelBanner, BootTimeout: timeout})
}
