package provision

import (
	"strings"
	"testing"
)

func TestCheckMkfsOptions(t *testing.T) {
	tests := []struct {
		fs, opts string
		want     string // "" accepted; else a part of the error
	}{
		{"ext4", "", ""},
		{"ext4", "-b 4096 -O ^has_journal", ""},
		{"ext4", "-b4096 -m 1 -i 16384 -I 256 -T largefile4 -U random -e remount-ro -E lazy_itable_init=0,lazy_journal_init=0,stride=16,stripe_width=64", ""},
		{"ext3", "-J size=64", ""},
		{"xfs", "-f -m crc=1,finobt=1,reflink=1 -d agcount=4,su=64k,sw=2 -i size=512 -l size=64m,lazy-count=1,internal=1 -n ftype=1", ""},
		{"", "-d agcount=8", ""},
		{"swap", "-p 4096 -U 0d0d6c0e-4b0e-4c7a-9c2a-1f2e3d4c5b6a", ""},
		{"vfat", "-F 32 -S 4096 -s 8", ""},

		// Devices and paths, in every spelling.
		{"xfs", "-l logdev=/dev/sdc", `"logdev=/dev/sdc" names a path or device`},
		{"xfs", "-llogdev=/dev/sdc", `"-llogdev=/dev/sdc" names a path or device`},
		{"xfs", "-l logdev=sdc", `-l "logdev=sdc": "logdev" is not an accepted sub-option`},
		{"xfs", "-l internal=0", `-l "internal=0": only internal=1 is accepted`},
		{"xfs", "-r rtdev=/dev/sdc", `names a path or device`},
		{"xfs", "-r rtdev=sdc", `"rtdev" is not an accepted sub-option`},
		{"xfs", "-d name=/dev/sdc", `names a path or device`},
		{"xfs", "-d file=1,name=disk.img", `"file" is not an accepted sub-option`},
		{"ext4", "-J device=/dev/sdc", `names a path or device`},
		{"ext4", "-Jdevice=/dev/sdc", `names a path or device`},
		{"ext4", "-J device=UUID=3f0b", `-J "device=UUID=3f0b": "device" is not an accepted sub-option`},
		{"ext4", "-J device=LABEL=journal", `"device" is not an accepted sub-option`},
		{"ext4", "-E device=/dev/sdc", `names a path or device`},
		{"ext4", "-E offset=1048576", `"offset" is not an accepted sub-option`},
		{"ext4", "--opt=/dev/sdc", `names a path or device`},
		{"ext4", "--journal-device=sdc", `long options are not accepted`},
		{"ext4", "/dev/sdc", `"/dev/sdc" names a path or device`},
		{"ext4", "-b 4096 /dev/sdc", `"/dev/sdc" names a path or device`},
		{"ext4", "sdc", `"sdc" is not an option`},
		{"ext4", "-b 4096 1024", `"1024" is not an option`},
		{"ext4", "-O journal_dev", `journal_dev makes an external journal device`},
		{"ext4", "-d /tmp/root", `names a path or device`},
		{"ext4", "-d root", `"-d" is not an accepted mke2fs option`},
		{"ext4", "-z undo", `"-z" is not an accepted mke2fs option`},
		{"ext4", "-M /srv", `names a path or device`},
		{"ext4", "-L other", `"-L" is not an accepted mke2fs option`},
		{"ext4", "-t ext2", `"-t" is not an accepted mke2fs option`},
		{"ext4", "-S", `"-S" is not an accepted mke2fs option`},
		{"ext4", "-n", `"-n" is not an accepted mke2fs option`},
		{"ext4", "-qF", `"-qF": give each option separately`},
		{"ext4", "-b", `-b needs a value`},
		{"ext4", "-b big", `-b "big": want a number`},
		{"ext4", "-E stride=$(reboot)", `holds a character no mkfs option needs`},
		{"xfs", "-N", `"-N" is not an accepted mkfs.xfs option`},
		{"xfs", "-p proto", `"-p" is not an accepted mkfs.xfs option`},
		{"xfs", "-m crc=2", `crc="2": want 0 or 1`},
		{"swap", "-L s", `"-L" is not an accepted mkswap option`},
		{"swap", "-o 4096", `"-o" is not an accepted mkswap option`},
		{"vfat", "-C", `"-C" is not an accepted mkfs.vfat option`},
		{"vfat", "-n LABEL", `"-n" is not an accepted mkfs.vfat option`},
		{"btrfs", "-f", `no mkfs options are accepted for file system "btrfs"`},
	}
	for _, tt := range tests {
		t.Run(tt.fs+" "+tt.opts, func(t *testing.T) {
			err := CheckMkfsOptions(tt.fs, tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckMkfsOptions(%q, %q) = %v, want nil", tt.fs, tt.opts, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckMkfsOptions(%q, %q) = %v, want an error containing %q", tt.fs, tt.opts, err, tt.want)
			}
		})
	}
}

// FuzzCheckMkfsOptions: whatever options are accepted name no path, no
// device and none of the sub-options that take one.
func FuzzCheckMkfsOptions(f *testing.F) {
	for _, s := range []string{"-b 4096", "-l logdev=/dev/sdc", "-J device=UUID=x", "-E stride=4,offset=1", "-d agcount=4,name=x", "-qF", "sdc", "-L x"} {
		for _, fs := range []string{"ext4", "xfs", "swap", "vfat"} {
			f.Add(fs, s)
		}
	}
	f.Fuzz(func(t *testing.T, fs, opts string) {
		if CheckMkfsOptions(fs, opts) != nil {
			return
		}
		if strings.Contains(opts, "/") {
			t.Fatalf("accepted %q for %q: holds a path", opts, fs)
		}
		// No sub-option that names a device or file, whatever its spelling.
		for _, tok := range strings.Fields(opts) {
			for _, kv := range strings.Split(tok, ",") {
				if i := strings.LastIndex(kv, "-"); strings.HasPrefix(kv, "-") && i >= 0 && len(kv) > 2 {
					kv = kv[2:] // an attached sub-option list: -llogdev=...
				}
				key, _, _ := strings.Cut(kv, "=")
				switch key {
				case "logdev", "rtdev", "device", "file", "name", "offset":
					t.Fatalf("accepted %q for %q: sub-option %q", opts, fs, key)
				}
			}
		}
	})
}
