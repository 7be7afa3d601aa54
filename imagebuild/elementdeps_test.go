package imagebuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mkElement(t *testing.T, dir string, deps ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if len(deps) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "element-deps"), []byte("# deps\n"+strings.Join(deps, "\n")+"\n\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveElements(t *testing.T) {
	root := t.TempDir()
	p1, p2 := filepath.Join(root, "p1"), filepath.Join(root, "p2")
	top := mkElement(t, filepath.Join(root, "local", "top"), "base", "extra")
	mkElement(t, filepath.Join(p1, "base"), "common")
	mkElement(t, filepath.Join(p2, "base")) // shadowed by p1's
	mkElement(t, filepath.Join(p2, "extra"), "common")
	mkElement(t, filepath.Join(p2, "common"))
	got, err := ElementSearch{Path: []string{p1, p2}}.Resolve([]string{top})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(p2, "common"), filepath.Join(p1, "base"), filepath.Join(p2, "extra"), top}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	if got := SplitElementsPath(p1 + "::" + p2 + ":"); !cmp.Equal(got, []string{p1, p2}) {
		t.Errorf("SplitElementsPath = %v", got)
	}
}

func TestResolveElementsErrors(t *testing.T) {
	root := t.TempDir()
	mkElement(t, filepath.Join(root, "a"), "b")
	mkElement(t, filepath.Join(root, "b"), "c")
	mkElement(t, filepath.Join(root, "c"), "a")
	mkElement(t, filepath.Join(root, "lonely"), "ghost")
	mkElement(t, filepath.Join(root, "badname"), "../etc")
	s := ElementSearch{Path: []string{root}}
	for _, tt := range []struct{ ref, want string }{
		{"a", "element-deps cycle: a -> b -> c -> a"},
		{"lonely", `element "ghost": not found in ELEMENTS_PATH "` + root + `" (an element-dep of "lonely")`},
		{"badname", `element-deps line 2: "../etc" is not an element name`},
		{"nowhere", `element "nowhere": not found in ELEMENTS_PATH`},
		{root + "/missing", "no such file or directory"},
	} {
		if _, err := s.Resolve([]string{tt.ref}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%s) = %v, want %q", tt.ref, err, tt.want)
		}
	}
}

func TestPlanRootEnvFirstBoot(t *testing.T) {
	el := filepath.Join(t.TempDir(), "el")
	mkHook(t, el, "root.d", "10-root", 0o755)
	mkHook(t, el, "install.d", "10-inst", 0o755)
	mkHook(t, el, "first-boot.d", "10-fb", 0o755)
	if err := os.MkdirAll(filepath.Join(el, "environment.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"10-a.bash", "20-b", "README.md"} {
		if err := os.WriteFile(filepath.Join(el, "environment.d", n), []byte("X=1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hooks, err := LoadElements([]string{el})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks[EnvPhase]) != 2 {
		t.Fatalf("environment.d files = %+v, want 10-a.bash and 20-b", hooks[EnvPhase])
	}
	cfg := Config{ImageData: map[string]Image{"/": {Container: "gzip", Format: "ext4", URI: "r.img.gz"}}, Output: "/out",
		Repos: []Repo{{Name: "d", Type: "deb", URI: "http://m.invalid/debian", Suite: "bookworm", Section: "main"}}, Codename: "bookworm", Packages: []string{"less"}}
	p, err := BuildPlan(cfg, Options{Chroot: "/w/root", TmpDir: "/w/tmp", HooksDir: "/w/hooks", Hooks: hooks, ElementNames: []string{"el"}})
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, s := range p.Steps {
		idx[s.Name] = i
		if s.Name == "debootstrap" {
			t.Errorf("debootstrap planned although root.d makes the root")
		}
	}
	env := `set -a; for f in '/w/hooks/environment.d/10-a.bash' '/w/hooks/environment.d/20-b'; do`
	rootStep := p.Steps[idx["hook root.d/10-root (element el)"]]
	if rootStep.Op != OpRun || rootStep.Argv[0] != "bash" || !strings.HasPrefix(rootStep.Argv[2], env) || rootStep.Argv[3] != "/w/hooks/root.d/10-root" {
		t.Errorf("root.d step = %v", rootStep)
	}
	if !strings.Contains(rootStep.String(), "TARGET_ROOT=/w/root") || !strings.Contains(rootStep.String(), "DIB_DISTRIBUTION_MIRROR=http://m.invalid/debian") {
		t.Errorf("root.d env: %v", rootStep)
	}
	inst := p.Steps[idx["hook install.d/10-inst (element el)"]]
	if inst.Op != OpChroot || !strings.Contains(inst.Argv[2], "'/tmp/in_target.d/environment.d/10-a.bash'") || inst.Argv[3] != "/tmp/in_target.d/install.d/10-inst" {
		t.Errorf("install.d step = %v", inst)
	}
	order := []string{"stage hook environment.d/10-a.bash", "stage hook root.d/10-root", "hook root.d/10-root (element el)",
		"mount /proc", "apt-get install", "hook install.d/10-inst (element el)", "first-boot hook 10-fb", "first-boot unit", "enable first-boot unit"}
	for i := 1; i < len(order); i++ {
		a, okA := idx[order[i-1]]
		b, okB := idx[order[i]]
		if !okA || !okB || a >= b {
			t.Errorf("step %q (%d, %v) not before %q (%d, %v)", order[i-1], a, okA, order[i], b, okB)
		}
	}
	if s := p.Steps[idx["first-boot hook 10-fb"]]; s.Path != "/w/root/etc/imprint/first-boot.d/10-fb" || s.Mode != 0o755 {
		t.Errorf("first-boot hook step = %v", s)
	}
	if strings.Count(p.String(), "stage hook install.d/10-inst") != 1 {
		t.Errorf("hooks staged twice:\n%s", p)
	}
}

// Without a search path, elements are directories: absolute, relative, or
// a bare name in the working directory (imprint's --element DIR).
func TestResolveElementsWithoutPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	abs := mkElement(t, filepath.Join(dir, "abs"), "bare")
	mkElement(t, filepath.Join(dir, "bare"))
	got, err := ElementSearch{}.Resolve([]string{abs})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bare", abs}; !cmp.Equal(got, want) {
		t.Errorf("Resolve = %v, want %v", got, want)
	}
}
