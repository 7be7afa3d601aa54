//go:build !imprint_ramdisk

package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/agent"
	"github.com/imprint-dev/imprint/api"
)

func TestCtl(t *testing.T) {
	node := &agentFakeNode{failURI: "never"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobs, err := agent.NewJobs(ctx, node.steps(agent.Config{}, nil, nil), agent.JobsOptions{AllowDestructive: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewRouter(api.Deps{Token: "tk", Inventory: agentFakeInventory, Jobs: jobs, Power: &agent.Power{}}))
	defer srv.Close()
	ctl := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := dispatch(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out},
			append([]string{"imprint", "ctl", "--agent", srv.URL, "--token", "tk"}, args...))
		return code, out.String()
	}
	doc := "testdata/provision_fuel90_ubuntu_1disk.json"
	for _, tt := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"inventory"}, 0, `"/dev/vda"`},
		{[]string{"status"}, 0, `"state": "idle"`},
		{[]string{"watch"}, 1, "no job yet"},
		{[]string{"plan", doc}, 0, `"/dev/mapper/os-root"`},
		{[]string{"plan", "-"}, 2, "empty provision document"},
		{[]string{"provision", doc, "--watch"}, 0, "succeeded"},
		{[]string{"status"}, 0, `"state": "succeeded"`},
		{[]string{"provision", doc}, 1, "locked"},
		{[]string{"provision", "--force", doc}, 0, "provisioning started"},
		{[]string{"reboot"}, 1, "403"},
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"provision", doc, "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"provision", "-h"}, 0, "-watch"},
	} {
		code, out := ctl(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.contains) {
			t.Errorf("ctl %s: exit %d, output:\n%s\nwant exit %d containing %q", strings.Join(tt.args, " "), code, out, tt.code, tt.contains)
		}
	}
	jobs.Wait()
	// watch of a finished job prints its verdict
	if code, out := ctl("watch"); code != 0 || !strings.Contains(out, "succeeded") {
		t.Errorf("watch after the job: %d %s", code, out)
	}
	var out bytes.Buffer
	code := dispatch(context.Background(), &cmdEnv{stdout: &out, stderr: &out}, []string{"imprint", "ctl", "--agent", srv.URL, "--token", "wrong", "status"})
	if code != 1 || !strings.Contains(out.String(), "401") {
		t.Errorf("wrong token: %d %s", code, out.String())
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	bar := &progressBar{w: &b, job: "j", step: "images", done: 3 << 29, total: 3 << 30}
	if got, want := bar.render(), "[###############...............]  50%  images      1.50 GiB/3.00 GiB"; got != want {
		t.Errorf("render\n got %q\nwant %q", got, want)
	}
}
