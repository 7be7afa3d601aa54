package provision

import (
	"fmt"
	"regexp"
	"strings"
)

// mkfs options a document may pass (partitioning.fss[].fs_options, the
// nailgun_simple driver's "extra mkfs options"). They become arguments of
// the mkfs command that runs as root in the ramdisk, so only what each
// filesystem's mkfs documents as shaping the new filesystem is accepted:
// sizes, counts, feature switches, a UUID. Everything that names another
// device or a file (an external log or journal, a realtime device, a
// protofile, an undo file, a directory to copy in), that makes mkfs do
// something else than make this filesystem (a dry run, a superblock-only
// write, a bad-block scan), and anything that repeats what the document
// says elsewhere (the type, the label) is refused. A value never holds a
// "/": no path of any kind, in any spelling, reaches mkfs.

// optKind is what an option takes.
type optKind int

const (
	optFlag   optKind = iota // no argument
	optNumber                // 4096, 64k, 10m
	optWord                  // a word: feature list, UUID, behaviour
	optSub                   // key=value[,key=value...] from an allowed set
)

type mkfsOpt struct {
	kind optKind
	// sub are the keys of an optSub option, each with the grammar of its
	// value ("" : the key takes no value).
	sub map[string]string
}

// Value grammars of sub-options.
const (
	vNum  = "num"  // a number, optionally with a unit suffix
	vBool = "bool" // 0 or 1
	vWord = "word"
	vNone = "" // a bare key
)

var (
	mkfsNumRE  = regexp.MustCompile(`^[0-9]+[kKmMgGtTpPeEbBsS]?$`)
	mkfsWordRE = regexp.MustCompile(`^[A-Za-z0-9_.,:^+-]+$`)
)

// mkfsOptions are the accepted options of each file_system's mkfs.
var mkfsOptions = map[string]map[string]mkfsOpt{
	// mke2fs(8).
	"ext": {
		"-F": {kind: optFlag}, "-q": {kind: optFlag}, "-v": {kind: optFlag}, "-j": {kind: optFlag},
		"-D": {kind: optFlag}, "-K": {kind: optFlag},
		"-b": {kind: optNumber}, "-C": {kind: optNumber}, "-g": {kind: optNumber}, "-G": {kind: optNumber},
		"-i": {kind: optNumber}, "-I": {kind: optNumber}, "-m": {kind: optNumber}, "-N": {kind: optNumber},
		"-r": {kind: optNumber},
		"-T": {kind: optWord}, "-U": {kind: optWord}, "-e": {kind: optWord}, "-o": {kind: optWord},
		"-O": {kind: optWord},
		"-E": {kind: optSub, sub: map[string]string{
			"stride": vNum, "stripe_width": vNum, "stripe-width": vNum, "resize": vNum,
			"lazy_itable_init": vBool, "lazy_journal_init": vBool, "packed_meta_blocks": vBool,
			"assume_storage_prezeroed": vBool, "num_backup_sb": vNum, "root_owner": vWord,
			"discard": vNone, "nodiscard": vNone, "quotatype": vWord, "encoding": vWord,
			"encoding_flags": vWord, "mmp_update_interval": vNum, "orphan_file_size": vNum,
		}},
		"-J": {kind: optSub, sub: map[string]string{"size": vNum, "fast_commit_size": vNum}},
	},
	// mkfs.xfs(8).
	"xfs": {
		"-f": {kind: optFlag}, "-q": {kind: optFlag}, "-K": {kind: optFlag},
		"-b": {kind: optSub, sub: map[string]string{"size": vNum}},
		"-m": {kind: optSub, sub: map[string]string{"crc": vBool, "finobt": vBool, "uuid": vWord, "rmapbt": vBool,
			"reflink": vBool, "bigtime": vBool, "inobtcount": vBool}},
		"-d": {kind: optSub, sub: map[string]string{"agcount": vNum, "agsize": vNum, "su": vNum, "sw": vNum,
			"sunit": vNum, "swidth": vNum, "noalign": vNone, "size": vNum, "cowextsize": vNum,
			"extszinherit": vNum, "daxinherit": vBool, "projinherit": vNum}},
		"-i": {kind: optSub, sub: map[string]string{"size": vNum, "maxpct": vNum, "align": vBool, "sparse": vBool,
			"perblock": vNum, "attr": vNum, "projid32bit": vBool, "nrext64": vBool}},
		"-l": {kind: optSub, sub: map[string]string{"size": vNum, "version": vNum, "sunit": vNum, "su": vNum,
			"lazy-count": vBool, "internal": "1", "agnum": vNum}},
		"-n": {kind: optSub, sub: map[string]string{"size": vNum, "version": vWord, "ftype": vBool}},
		"-r": {kind: optSub, sub: map[string]string{"extsize": vNum}},
		"-s": {kind: optSub, sub: map[string]string{"size": vNum}},
	},
	// mkswap(8).
	"swap": {
		"-f": {kind: optFlag}, "-v1": {kind: optFlag},
		"-p": {kind: optNumber}, "-U": {kind: optWord}, "-e": {kind: optWord},
	},
	// mkfs.fat(8).
	"vfat": {
		"-a": {kind: optFlag}, "-I": {kind: optFlag}, "-v": {kind: optFlag},
		"-F": {kind: optNumber}, "-S": {kind: optNumber}, "-s": {kind: optNumber}, "-f": {kind: optNumber},
		"-r": {kind: optNumber}, "-R": {kind: optNumber}, "-h": {kind: optNumber}, "-b": {kind: optNumber},
		"-i": {kind: optWord}, "-M": {kind: optWord}, "-D": {kind: optWord},
	},
}

// mkfsFamily is the mkfs option table of a file_system value.
func mkfsFamily(fsType string) string {
	switch fsType {
	case "ext2", "ext3", "ext4":
		return "ext"
	case "", "xfs":
		return "xfs" // the planner's default
	}
	return fsType
}

// CheckMkfsOptions checks the extra mkfs options of a file system of type
// fsType ("" is xfs, the default) as the planner splits them (on white
// space): only the options of that mkfs listed as safe, each with a value
// of its grammar; nothing that names a device, a file or a path. It
// returns nil or an error saying what is refused and why.
func CheckMkfsOptions(fsType, options string) error {
	toks := strings.Fields(options)
	if len(toks) == 0 {
		return nil
	}
	table, ok := mkfsOptions[mkfsFamily(fsType)]
	if !ok {
		return fmt.Errorf("no mkfs options are accepted for file system %q", fsType)
	}
	// First: no path or device in any token, whatever option it belongs
	// to (logdev=/dev/sdc, -Jdevice=/dev/sdc, --opt=/dev/sdc, /dev/sdc).
	for _, tok := range toks {
		if strings.Contains(tok, "/") {
			return fmt.Errorf("%q names a path or device: mkfs options may not", tok)
		}
	}
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		if strings.ContainsAny(tok, "\"'`$\\;&|<>(){}*?[]~!#") {
			return fmt.Errorf("%q holds a character no mkfs option needs", tok)
		}
		if strings.HasPrefix(tok, "--") {
			return fmt.Errorf("%q: long options are not accepted", tok)
		}
		if !strings.HasPrefix(tok, "-") || len(tok) < 2 {
			return fmt.Errorf("%q is not an option (a bare word would be read as the device or a size)", tok)
		}
		name, attached := tok, ""
		spec, known := table[tok]
		if !known {
			name, attached = tok[:2], tok[2:]
			spec, known = table[name]
			if known && spec.kind == optFlag {
				return fmt.Errorf("%q: give each option separately", tok)
			}
		}
		if !known {
			return fmt.Errorf("%q is not an accepted %s option (accepted: %s)", name, mkfsName(fsType), strings.Join(sortedKeys(table), " "))
		}
		if spec.kind == optFlag {
			continue
		}
		val := attached
		if val == "" {
			if i+1 >= len(toks) {
				return fmt.Errorf("%s needs a value", name)
			}
			i++
			val = toks[i]
			if strings.ContainsAny(val, "\"'`$\\;&|<>(){}*?[]~!#") {
				return fmt.Errorf("%s %q holds a character no mkfs option needs", name, val)
			}
		}
		if err := checkMkfsValue(name, spec, val); err != nil {
			return err
		}
	}
	return nil
}

func checkMkfsValue(name string, spec mkfsOpt, val string) error {
	switch spec.kind {
	case optNumber:
		if !mkfsNumRE.MatchString(val) {
			return fmt.Errorf("%s %q: want a number", name, val)
		}
	case optWord:
		if !mkfsWordRE.MatchString(val) {
			return fmt.Errorf("%s %q: want a word of letters, digits and _.,:^+-", name, val)
		}
		if name == "-O" {
			for _, f := range strings.Split(val, ",") {
				if strings.TrimPrefix(f, "^") == "journal_dev" {
					return fmt.Errorf("-O %q: journal_dev makes an external journal device, not this filesystem", val)
				}
			}
		}
	case optSub:
		for _, kv := range strings.Split(val, ",") {
			k, v, hasV := strings.Cut(kv, "=")
			want, ok := spec.sub[k]
			if !ok {
				return fmt.Errorf("%s %q: %q is not an accepted sub-option (accepted: %s)", name, val, k, strings.Join(sortedKeys(spec.sub), " "))
			}
			switch {
			case want == vNone:
				if hasV {
					return fmt.Errorf("%s %q: %s takes no value", name, val, k)
				}
			case !hasV || v == "":
				return fmt.Errorf("%s %q: %s needs a value", name, val, k)
			case want == vNum && !mkfsNumRE.MatchString(v):
				return fmt.Errorf("%s %q: %s=%q: want a number", name, val, k, v)
			case want == vBool && v != "0" && v != "1":
				return fmt.Errorf("%s %q: %s=%q: want 0 or 1", name, val, k, v)
			case want == vWord && !mkfsWordRE.MatchString(v):
				return fmt.Errorf("%s %q: %s=%q: want a word", name, val, k, v)
			case want != vNum && want != vBool && want != vWord && v != want:
				return fmt.Errorf("%s %q: only %s=%s is accepted", name, val, k, want)
			}
		}
	}
	return nil
}

func mkfsName(fsType string) string {
	switch mkfsFamily(fsType) {
	case "ext":
		return "mke2fs"
	case "xfs":
		return "mkfs.xfs"
	case "swap":
		return "mkswap"
	case "vfat":
		return "mkfs.vfat"
	}
	return "mkfs." + fsType
}
