package imagebuild

import (
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// FirstBootDir is where first-boot.d hooks are installed in the image,
// and FirstBootDone the file whose presence means they ran.
const (
	FirstBootDir  = "/etc/imprint/first-boot.d"
	FirstBootDone = "/var/lib/imprint/first-boot.done"
	firstBootUnit = "imprint-first-boot.service"
)

// firstBootService runs the first-boot.d hooks once (run-parts, the same
// name rule as dib-run-parts), before rc.local and cloud-init's final
// stage; a failing hook fails the unit and leaves no done marker, so the
// next boot tries again.
const firstBootService = `# written by imprint build-image: diskimage-builder's first-boot.d
[Unit]
Description=Run the image's first-boot.d hooks once
After=local-fs.target network.target
Before=rc-local.service cloud-final.service
ConditionPathExists=!` + FirstBootDone + `

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/run-parts --verbose --exit-on-error ` + FirstBootDir + `
ExecStart=/bin/mkdir -p ` + "/var/lib/imprint" + `
ExecStart=/bin/touch ` + FirstBootDone + `

[Install]
WantedBy=multi-user.target
`

func distroName(o Options) string {
	if o.Distro == "" {
		return "debian"
	}
	return o.Distro
}

// stageHooks copies every hook (and environment.d file) to HooksDir once,
// where host phases run them and the chroot sees them as
// /tmp/in_target.d.
func (b *planBuilder) stageHooks() {
	if b.staged {
		return
	}
	b.staged = true
	for _, ph := range append([]string{EnvPhase, RootPhase}, Phases...) {
		for _, h := range b.o.Hooks[ph] {
			mode := fs.FileMode(0o755)
			if ph == EnvPhase {
				mode = 0o644
			}
			b.add(Step{Name: "stage hook " + ph + "/" + h.Name, Op: OpCopy, Source: h.Path, Path: filepath.Join(b.o.HooksDir, ph, h.Name), Mode: mode})
		}
	}
}

// hookArgv runs the hook name of phase from dir (HooksDir on the host,
// /tmp/in_target.d in the chroot). With environment.d files the hook runs
// under bash after they were sourced (exported, in name order), as
// diskimage-builder sources them before its phases; without, directly.
func (b *planBuilder) hookArgv(dir, phase, name string) []string {
	hook := path.Join(dir, phase, name)
	env := b.o.Hooks[EnvPhase]
	if len(env) == 0 {
		return []string{hook}
	}
	var files []string
	for _, h := range env {
		files = append(files, shellQuote(path.Join(dir, EnvPhase, h.Name)))
	}
	script := "set -a; for f in " + strings.Join(files, " ") + `; do . "$f" || { echo "environment.d: $f failed" >&2; exit 1; }; done; set +a; exec "$0"`
	return []string{"bash", "-c", script, hook}
}

// firstBoot installs the first-boot.d hooks and the unit that runs them
// on the image's first boot.
func (b *planBuilder) firstBoot() {
	hs := b.o.Hooks[FirstBootPhase]
	if len(hs) == 0 {
		return
	}
	for _, h := range hs {
		b.add(Step{Name: "first-boot hook " + h.Name, Op: OpCopy, Source: h.Path, Path: b.in(strings.TrimPrefix(FirstBootDir, "/") + "/" + h.Name), Mode: 0o755})
	}
	b.add(Step{Name: "first-boot unit", Op: OpWrite, Path: b.in("etc/systemd/system/" + firstBootUnit), Data: firstBootService, Mode: 0o644})
	b.add(b.chroot("enable first-boot unit", "systemctl", "enable", firstBootUnit))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
