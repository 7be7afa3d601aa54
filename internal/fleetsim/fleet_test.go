//go:build fleetsim

package fleetsim

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imprint-dev/imprint/internal/pgtest"
)

var (
	flagNodes    = flag.String("nodes", "50,200,1000", "fleet sizes to simulate, comma separated")
	flagImageMiB = flag.Int("image-mib", 0, "uncompressed size of the simulated image (MiB; default: 6400 MiB over the nodes, 16 to 128, in steps of 16)")
	flagSlots    = flag.Int("image-slots", 64, "image writes running at once in the simulation process (the baseline too)")
	flagOut      = flag.String("out", "", "also write the report (Markdown) here")
	flagKillDBs  = flag.String("kill-dbs", "SQLite", "databases of the SIGKILL runs (comma separated: SQLite, PostgreSQL)")
)

// TestFleetSim is `make fleet-sim`: for each fleet size, the simulation on
// SQLite, on PostgreSQL, and with the controller SIGKILLed and restarted
// mid-run; it prints the table and fails on any failure, any node lost or
// provisioned twice, or throughput under 90% of nginx alone.
func TestFleetSim(t *testing.T) {
	var sizes []int
	for _, s := range strings.Split(*flagNodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			t.Fatalf("-nodes %q: %q is not a positive number", *flagNodes, s)
		}
		sizes = append(sizes, n)
	}
	e := newEnv(t)
	pg := pgtest.Start(t)
	var reports []*Report
	print := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "imprint fleet simulation, %s: SIMULATED nodes (the real agent code, its disk, configdrive and bootloader steps simulated; images written by the real image writer into sparse files), the real controller process, stock nginx serving a real ext4 image (MiB column) as multi-frame zstd; at most %d image writes at once in the simulation process, the nginx-alone baseline (mean of a run before and one after) under the same bound.\n\n",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), *flagSlots)
		b.WriteString(Table(reports))
		return b.String()
	}
	for _, n := range sizes {
		mib := *flagImageMiB
		if mib <= 0 {
			mib = min(128, max(16, 6400/n/16*16))
		}
		image := e.image(t, mib)
		runs := []struct {
			db   string
			kill bool
		}{{"SQLite", false}, {"PostgreSQL", false}}
		for _, db := range strings.Split(*flagKillDBs, ",") {
			if db = strings.TrimSpace(db); db != "" {
				runs = append(runs, struct {
					db   string
					kill bool
				}{db, true})
			}
		}
		for _, r := range runs {
			dir := t.TempDir()
			dsn := "sqlite:" + filepath.Join(dir, "state", "controller.db")
			if r.db == "PostgreSQL" {
				dsn = pg.NewDatabase(t)
			}
			t0 := time.Now()
			rep, err := Run(context.Background(), Config{Bin: e.bin, Dir: dir, Nodes: n, DB: dsn, DBName: r.db, Image: image,
				NginxURL: e.nginx.URL + "/" + strconv.Itoa(mib), ImageSlots: *flagSlots, Kill: r.kill, Heartbeat: 10 * time.Second, Timeout: 45 * time.Minute})
			if err != nil {
				t.Fatalf("%d nodes on %s (kill %v): %v", n, r.db, r.kill, err)
			}
			reports = append(reports, rep)
			fmt.Fprintf(os.Stderr, "fleet-sim: %d nodes on %s%s done in %s\n", n, r.db, map[bool]string{true: " with a SIGKILL", false: ""}[r.kill], time.Since(t0).Round(time.Second))
			for i, f := range rep.Failures {
				if i == 20 {
					t.Errorf("... %d more", len(rep.Failures)-20)
					break
				}
				t.Errorf("%s, %d nodes: %s", rep.Name, n, f)
			}
			if !r.kill && rep.Ratio() < 0.9 {
				t.Errorf("%s, %d nodes: %.0f MB/s is %.0f%% of nginx alone (%.0f MB/s), under 90%%", rep.Name, n, rep.WrittenMBps, 100*rep.Ratio(), rep.NginxMBps)
			}
		}
	}
	out := print()
	fmt.Println(out)
	if *flagOut != "" {
		os.MkdirAll(filepath.Dir(*flagOut), 0o755)
		if err := os.WriteFile(*flagOut, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}
