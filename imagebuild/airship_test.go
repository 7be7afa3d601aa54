package imagebuild

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readAirship(t *testing.T, name string) AirshipDoc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/airship", name))
	if err != nil {
		t.Fatal(err)
	}
	if !IsAirship(data) {
		t.Fatalf("IsAirship(%s) = false", name)
	}
	d, err := ParseAirship(data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func airshipInput(t *testing.T) AirshipInput {
	t.Helper()
	ud, err := os.ReadFile("testdata/airship/user-data")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := os.ReadFile("testdata/airship/network-config")
	if err != nil {
		t.Fatal(err)
	}
	return AirshipInput{ConfigDir: "/srv/iso", WorkDir: "/w", UserData: ud, NetworkConfig: nc}
}

func TestAirshipResolveISO(t *testing.T) {
	d := readAirship(t, "image-configuration.yaml")
	if got := d.ConfigDir("/docs"); got != "/docs" {
		t.Errorf("ConfigDir = %q, want the document's directory (volume .:/config)", got)
	}
	ab, err := d.Resolve(airshipInput(t))
	if err != nil {
		t.Fatal(err)
	}
	if ab.Action != ActionISO || ab.Output != "/srv/iso/airship-live.iso" || ab.Metadata != "/srv/iso/output-metadata.yaml" || ab.Tarball != "/w/root.tar" {
		t.Errorf("resolved %s %s %s %s", ab.Action, ab.Output, ab.Metadata, ab.Tarball)
	}
	if !slices.Contains(ab.Config.Packages, "live-boot") || !slices.Contains(ab.Config.Packages, "less") || slices.Contains(ab.Config.Packages, "grub-pc") {
		t.Errorf("packages %v: want live-boot and less, no grub-pc", ab.Config.Packages)
	}
	files := map[string]File{}
	for _, f := range ab.Config.Files {
		files[f.Path] = f
	}
	ud, _ := os.ReadFile("testdata/airship/user-data")
	if f := files["/var/lib/cloud/seed/nocloud/user-data"]; f.Content != string(ud) || f.Mode != "0600" {
		t.Errorf("seed user-data %+v", f)
	}
	if f := files["/var/lib/cloud/seed/nocloud/network-config"]; !strings.Contains(f.Content, "10.0.2.50/24") {
		t.Errorf("seed network-config %+v", f)
	}
	md := files["/var/lib/cloud/seed/nocloud/meta-data"].Content
	if !strings.HasPrefix(md, "instance-id: airship-live-") || !strings.HasSuffix(md, "\nlocal-hostname: airship-node\n") {
		t.Errorf("meta-data %q", md)
	}
	if files["/etc/hostname"].Content != "airship-node\n" || !strings.Contains(files["/etc/hosts"].Content, "10.0.2.2\tgateway.airship.test gateway\n") {
		t.Errorf("networking: hostname %q hosts %q", files["/etc/hostname"].Content, files["/etc/hosts"].Content)
	}
	// a changed user-data is a new cloud-init instance
	in := airshipInput(t)
	in.UserData = append(in.UserData, "# changed\n"...)
	ab2, err := d.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	if md2 := ab2.Config.Files[len(ab2.Config.Files)-1].Content; md2 == md {
		t.Errorf("instance id unchanged by a new user-data: %q", md2)
	}
	// the resolved config is one the builder plans
	cfg := ab.Config.WithDefaults("http://m.invalid/debian", KernelCloud)
	p, err := BuildPlan(cfg, Options{Chroot: "/w/r", TmpDir: "/w/t", Tarball: ab.Tarball})
	if err != nil {
		t.Fatal(err)
	}
	s := p.String()
	for _, w := range []string{"file /var/lib/cloud/seed/nocloud/user-data (files[2]): write path=/w/r/var/lib/cloud/seed/nocloud/user-data mode=600 data=<", "rootfs tarball: tar path=/w/root.tar source=/w/r"} {
		if !strings.Contains(strings.ReplaceAll(s, "data=\"", "data=<"), w) {
			t.Errorf("plan lacks %q", w)
		}
	}
}

func TestAirshipResolveQcowStorage(t *testing.T) {
	d := readAirship(t, "airship-image.yaml")
	if d.DocName() != "base" || d.Action() != ActionQcow {
		t.Fatalf("name %q action %q", d.DocName(), d.Action())
	}
	if got := d.ConfigDir("/docs"); got != "/docs" {
		t.Errorf("ConfigDir = %q", got)
	}
	in := airshipInput(t)
	in.OutputDir = "/out"
	ab, err := d.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Image{
		"/":     {Container: "raw", Format: "ext4", URI: "root.img"},
		"/boot": {Container: "raw", Format: "ext4", URI: "boot.img", Size: 256 << 20},
	}
	if diff := cmp.Diff(want, ab.Config.ImageData); diff != "" {
		t.Errorf("image data (-want +got):\n%s", diff)
	}
	if ab.DiskSize != 3<<30 || ab.Output != "/out/base.qcow2" || ab.Metadata != "/out/output-metadata.yaml" {
		t.Errorf("disk %d output %s metadata %s", ab.DiskSize, ab.Output, ab.Metadata)
	}
	if !slices.Contains(ab.Config.Packages, "grub-pc") {
		t.Errorf("build-qcow packages lack grub-pc: %v", ab.Config.Packages)
	}
	// every partition sized, no diskSize: the disk is their sum
	d.Spec.Params.Storage.DiskSize = ""
	d.Spec.Params.Storage.Partitions[1].Size = "2G"
	ab, err = d.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	if ab.DiskSize != 256<<20+2<<30+2<<20 {
		t.Errorf("disk size %d", ab.DiskSize)
	}
}

func TestAirshipResolveRootTopLevel(t *testing.T) {
	d := readAirship(t, "root.yaml")
	ab, err := d.Resolve(airshipInput(t))
	if err != nil {
		t.Fatal(err)
	}
	if ab.Action != ActionRoot || ab.Output != "/srv/iso/airship-root.tar" || ab.Tarball != ab.Output || ab.Metadata != "/srv/iso/root-metadata.yaml" {
		t.Errorf("resolved %+v", ab)
	}
	if slices.Contains(ab.Config.Packages, "live-boot") || slices.Contains(ab.Config.Packages, "grub-pc") {
		t.Errorf("build-root packages %v", ab.Config.Packages)
	}
}

func TestAirshipStrictAndValidate(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown top field", "apiVersion: airshipit.org/v1alpha1\nkind: ImageConfiguration\nmetadata: {name: x}\nspecs: {}\n", "field specs not found"},
		{"unknown builder field", "apiVersion: airshipit.org/v1alpha1\nkind: ImageConfiguration\nmetadata: {name: x}\nspec:\n  builder:\n    userDataFile: u\n", "field userDataFile not found"},
		{"unknown params field", "kind: AirshipImage/v1\nname: x\nspec:\n  action: build-iso\n  params:\n    netwrking: {}\n", "field netwrking not found"},
		{"unknown storage field", "kind: AirshipImage/v1\nname: x\nspec:\n  action: build-qcow\n  params:\n    storage:\n      partitions:\n        - mountpoint: /\n", "field mountpoint not found"},
		{"wrong type", "kind: AirshipImage/v1\nname: x\nspec:\n  params:\n    software:\n      packages: less\n", "cannot unmarshal !!str `less` into []string"},
		{"two documents", "kind: AirshipImage/v1\nname: x\n---\nkind: AirshipImage/v1\n", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAirship([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseAirship = %v, want %q", err, tc.want)
			}
		})
	}
	bad := `apiVersion: airshipit.org/v1
kind: ImageConfiguration
metadata: {name: Bad_Name}
spec:
  image: {type: qcow, outputFileName: ../x.qcow2}
  action: build-iso
  container: {volume: /srv}
  builder: {userDataFileName: /etc/passwd}
  params:
    networking:
      hostname: -bad-
      hosts: [{ip: 10.0.0.300, names: []}]
    software:
      packages: [Bad]
      kernel: rt
      repos: [{uri: http://m.invalid/d, suite: bookworm}]
    storage:
      partitions: [{mountPoint: /boot, filesystem: btrfs}]
`
	d, err := ParseAirship([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`apiVersion: "airshipit.org/v1": an ImageConfiguration is airshipit.org/v1alpha1`,
		`metadata.name: "Bad_Name" must be lower case letters, digits, '-' and '.'`,
		`spec.image.type: "qcow" contradicts action "build-iso"`,
		`spec.image.outputFileName: "../x.qcow2" must be a plain file name (no directory)`,
		`spec.container.volume: "/srv" is not HOST_DIR:/CONTAINER_DIR`,
		`spec.builder.userDataFileName: "/etc/passwd" must be a plain file name in the config directory`,
		`spec.params.networking.hostname: "-bad-" is not a host name`,
		`spec.params.networking.hosts[0].ip: "10.0.0.300" is not an IP address`,
		`spec.params.networking.hosts[0].names: must list at least one host name`,
		`spec.params.software.packages[0]: "Bad" is not a Debian package name`,
		`spec.params.software.kernel: "rt" is not cloud or generic`,
		`spec.params.software.repos[0].components: must be set unless suite ends with "/" (a flat repository)`,
		`spec.params.storage: only build-qcow makes a disk (build-iso has no partitions)`,
	}
	if diff := cmp.Diff(want, strings.Split(d.Validate().Error(), "\n")); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
	qcow := `kind: AirshipImage/v1
name: q
spec:
  action: build-qcow
  params:
    storage:
      diskSize: lots
      partitions:
        - {mountPoint: /boot, size: 1X}
        - {mountPoint: /boot, filesystem: xfs}
        - {mountPoint: /var, filesystem: xfs, size: 1G}
`
	d, err = ParseAirship([]byte(qcow))
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		`spec.params.storage.diskSize: "lots" is not a size such as 4G, 512M or bytes`,
		`spec.params.storage.partitions[0].size: "1X" is not a size such as 4G, 512M or bytes`,
		`spec.params.storage.partitions[1].mountPoint: "/boot" is also partitions[0]`,
		`spec.params.storage.partitions[2].size: an xfs partition is as large as its content (xfs cannot be grown offline); drop size or use ext4`,
		`spec.params.storage.partitions: must contain the root partition "/"`,
	}
	if diff := cmp.Diff(want, strings.Split(d.Validate().Error(), "\n")); diff != "" {
		t.Errorf("Validate qcow (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ doc, want string }{
		{"kind: Pod\nname: x\naction: build-iso\n", `kind: "Pod": want ImageConfiguration or AirshipImage/v1`},
		{"kind: AirshipImage/v1\nname: x\n", "action: must be one of build-root, build-iso, build-qcow (or image.type iso, qcow or root)"},
		{"kind: AirshipImage/v1\naction: build-iso\n", "metadata.name: must be set"},
		{"kind: AirshipImage/v1\nname: x\naction: build-iso\nspec: {action: build-iso}\n", "spec: the body is given both under spec and at the top level"},
		{"kind: AirshipImage/v1\nname: x\naction: build-disk\n", `action: "build-disk" is not one of build-root, build-iso, build-qcow`},
	} {
		d, err := ParseAirship([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestAirshipSeedChecks(t *testing.T) {
	d := readAirship(t, "image-configuration.yaml")
	for _, tc := range []struct {
		name       string
		ud, nc     string
		wantErrSub string
	}{
		{"empty user-data", "", "version: 2\n", `spec.builder.userDataFileName "user-data": empty`},
		{"bad cloud-config", "#cloud-config\nusers: [\n", "version: 2\n", `spec.builder.userDataFileName "user-data": #cloud-config is not YAML`},
		{"no header", "users: []\n", "version: 2\n", `first line "users: []": want #cloud-config`},
		{"script", "#!/bin/sh\necho hi\n", "version: 2\n", ""},
		{"network v3", "#cloud-config\n{}\n", "version: 3\n", `spec.builder.networkConfigFileName "network-config": version: want cloud-init network config version 1 or 2, got 3`},
		{"network under network:", "#cloud-config\n{}\n", "network:\n  version: 1\n  config: []\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := airshipInput(t)
			in.UserData, in.NetworkConfig = []byte(tc.ud), []byte(tc.nc)
			_, err := d.Resolve(in)
			if tc.wantErrSub == "" && err != nil || tc.wantErrSub != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErrSub)) {
				t.Errorf("Resolve = %v, want %q", err, tc.wantErrSub)
			}
		})
	}
}

func TestISOPlan(t *testing.T) {
	p, err := ISOPlan(ISOInput{Tarball: "/w/root.tar", KernelVersion: "6.1.0-9-cloud-amd64", WorkDir: "/w", Output: "/o/x.iso", Label: "X", Title: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iso: clean: remove-all path=/w/iso-root",
		"iso: clean tree: remove-all path=/w/iso-tree",
		"iso: mkdir root: mkdir path=/w/iso-root mode=755",
		"iso: mkdir live: mkdir path=/w/iso-tree/live mode=755",
		"iso: unpack root: run tar --numeric-owner --xattrs --xattrs-include=* -xpf /w/root.tar -C /w/iso-root",
		"iso: kernel: copy path=/w/iso-tree/live/vmlinuz source=/w/iso-root/boot/vmlinuz-6.1.0-9-cloud-amd64 mode=644",
		"iso: initramfs: copy path=/w/iso-tree/live/initrd.img source=/w/iso-root/boot/initrd.img-6.1.0-9-cloud-amd64 mode=644",
		"iso: squashfs: run mksquashfs /w/iso-root /w/iso-tree/live/filesystem.squashfs -noappend -no-progress -comp zstd -b 1M -e lost+found",
		"iso: remove root: remove-all path=/w/iso-root",
		`iso: grub.cfg: write path=/w/iso-tree/boot/grub/grub.cfg mode=644 data="# written by imprint build-image (build-iso)\nset timeout=1\nset default=0\nserial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\nmenuentry \"x\" {\n\tlinux /live/vmlinuz boot=live nonetworking console=tty0 console=ttyS0,115200n8\n\tinitrd /live/initrd.img\n}\n"`,
		"iso: grub-mkrescue: run grub-mkrescue -o /o/x.iso.part /w/iso-tree -- -volid X",
		"iso: rename: rename path=/o/x.iso source=/o/x.iso.part",
		"iso: remove tree: remove-all path=/w/iso-tree",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(p.String()), "\n")); diff != "" {
		t.Errorf("ISOPlan (-want +got):\n%s", diff)
	}
	if _, err := ISOPlan(ISOInput{Tarball: "t", WorkDir: "w", Output: "o", Label: strings.Repeat("L", 33)}); err == nil ||
		!strings.Contains(err.Error(), `work dir "w": must be absolute`) || !strings.Contains(err.Error(), `kernel version "": the root tree has no /boot/vmlinuz-VERSION`) ||
		!strings.Contains(err.Error(), "must be 1-32 characters") {
		t.Errorf("ISOPlan(bad) = %v", err)
	}
	if got := isoLabel("airship-live.v1"); got != "AIRSHIP_LIVE_V1" {
		t.Errorf("isoLabel = %q", got)
	}
}

func TestReadTree(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, typ byte, body string) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Size: int64(len(body)), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	status := "Package: less\nStatus: install ok installed\nVersion: 590-2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n" +
		"Package: cloud-init\nStatus: install ok installed\nDescription: x\n multi-line\nVersion: 22.4.2-1\n"
	add("./", tar.TypeDir, "")
	add("./var/lib/dpkg/status", tar.TypeReg, status)
	add("./boot/vmlinuz-6.1.0-10-cloud-amd64", tar.TypeReg, "k")
	add("./boot/vmlinuz-6.1.0-9-cloud-amd64", tar.TypeReg, "k")
	add("./boot/vmlinuz", tar.TypeSymlink, "")
	add("./var/lib/cloud/seed/nocloud/user-data", tar.TypeReg, "#cloud-config\n")
	add("./var/lib/cloud/seed/nocloud/meta-data", tar.TypeReg, "instance-id: x\n")
	tw.Close()
	ti, err := ReadTree(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := TreeInfo{
		Packages: []AirshipPackage{{Name: "cloud-init", Version: "22.4.2-1"}, {Name: "less", Version: "590-2"}},
		Kernels:  []string{"6.1.0-10-cloud-amd64", "6.1.0-9-cloud-amd64"},
		Seed:     []string{"meta-data", "user-data"},
	}
	if diff := cmp.Diff(want, ti); diff != "" {
		t.Errorf("ReadTree (-want +got):\n%s", diff)
	}
	if got := highestKernel(ti.Kernels); got != "6.1.0-10-cloud-amd64" {
		t.Errorf("highestKernel = %q", got)
	}
	if _, err := ReadTree(strings.NewReader("not a tar, but long enough to be read as a header block...")); err == nil {
		t.Error("ReadTree(garbage) = nil error")
	}
}

func TestIsAirship(t *testing.T) {
	for doc, want := range map[string]bool{
		"kind: ImageConfiguration\n": true, "kind: AirshipImage/v1\n": true, "kind: AirshipImage\n": true,
		`{"kind": "ImageConfiguration"}`: false, "image_data: {}\n": false, "kind: [\n": false,
	} {
		if got := IsAirship([]byte(doc)); got != want {
			t.Errorf("IsAirship(%q) = %v", doc, got)
		}
	}
}

// TestDiskPlanKeepsBootImage: with a /boot filesystem and a whole-disk
// image (the Airship qcow's storage), no copy or write lands on a raw
// filesystem image (grub's boot code once overwrote tmp/boot.img, the
// /boot filesystem, under its loop device).
func TestDiskPlanKeepsBootImage(t *testing.T) {
	d := readAirship(t, "airship-image.yaml")
	ab, err := d.Resolve(airshipInput(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ab.Config.WithDefaults("http://m.invalid/debian", KernelCloud)
	o := Options{Chroot: "/w/r", TmpDir: "/w/t", DiskImage: ab.Output, DiskFormat: "qcow2", DiskSize: ab.DiskSize,
		FSUUIDs: map[string]string{"/": "u1", "/boot": "u2"}}
	p, err := BuildPlan(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]bool{"/w/t/root.img": true, "/w/t/boot.img": true}
	for _, s := range p.Steps {
		if (s.Op == OpCopy || s.Op == OpWrite || s.Op == OpRename) && raw[s.Path] {
			t.Errorf("step %q writes the filesystem image %s", s.Name, s.Path)
		}
	}
}
