package provision

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The base of the rule tests is the Fuel 9.0 one-disk fixture:
// ks_spaces[0] is disk vda with volumes [0] boot, [1] /boot partition,
// [2] lvm_meta_pool, [3] pv os, [4] pv logs, [5] pv mysql, [6] pv horizon,
// [7] pv image; ks_spaces[1..5] are the VGs os, logs, image, mysql, horizon.
const ks = "ks_meta.pm_data.ks_spaces"

func TestRules(t *testing.T) {
	num := func(i int64) json.Number { return json.Number(strconv.FormatInt(i, 10)) }
	tests := []struct {
		name   string
		mutate func(t *testing.T, m map[string]any)
		want   []string
	}{
		// fuel-agent's JSON schema (§2 rules 1-5)
		{"ks_spaces not an array", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data")["ks_spaces"] = map[string]any{}
		}, []string{ks + ": must be an array, got object"}},
		{"ks_spaces empty", func(t *testing.T, m map[string]any) {
			setSpaces(m, []any{})
		}, []string{ks + ": must contain at least one disk (partition scheme is empty)"}},
		{"ks_spaces missing", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "pm_data"), "ks_spaces")
		}, []string{ks + ": required"}},
		{"ks_spaces items unique", func(t *testing.T, m map[string]any) {
			s := spaces(t, m)
			setSpaces(m, append(s, s[2]))
		}, []string{ks + "[6]: duplicate of ks_spaces[2] (items must be unique)"}},
		{"item not an object", func(t *testing.T, m map[string]any) {
			setSpaces(m, append(spaces(t, m), "sdb"))
		}, []string{ks + `[6]: must be an object, got string "sdb"`}},
		{"item without type", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "pm_data", "ks_spaces", 5), "type")
		}, []string{ks + `[5].type: required ("disk" or "vg")`}},
		{"item of unknown type", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 5)["type"] = "raid"
		}, []string{ks + `[5].type: must be "disk" or "vg", got string "raid"`}},
		{"disk required fields", func(t *testing.T, m map[string]any) {
			d := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)
			for _, k := range []string{"id", "name", "extra", "free_space"} {
				delete(d, k)
			}
		}, []string{ks + "[0].id: required", ks + "[0].name: required", ks + "[0].extra: required", ks + "[0].free_space: required"}},
		{"disk field types", func(t *testing.T, m map[string]any) {
			d := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)
			d["id"] = 7
			d["extra"] = []any{"disk/by-id/x", 1}
			d["free_space"] = "lots"
			d["bootable"] = "true"
		}, []string{
			ks + "[0].bootable: must be true or false, got string \"true\"",
			ks + "[0].extra[1]: must be a string, got number 1",
			ks + `[0].free_space: must be an integer, got string "lots"`,
			ks + "[0].id: must be a string, got number 7",
		}},
		{"size not an integer", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 3)["size"] = "abc"
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)["size"] = json.Number("10304.5")
		}, []string{
			ks + `[0].volumes[3].size: must be an integer, got string "abc"`,
			ks + `[0].volumes[4].size: must be an integer, got number 10304.5`,
		}},
		{"pv required fields", func(t *testing.T, m map[string]any) {
			v := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)
			delete(v, "vg")
			delete(v, "lvm_meta_size")
		}, []string{ks + "[0].volumes[4].lvm_meta_size: required", ks + "[0].volumes[4].vg: required"}},
		{"partition field types", func(t *testing.T, m map[string]any) {
			v := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 1)
			v["mount"] = nil
			v["file_system"] = 2
			v["keep_data"] = "no"
			v["partition_guid"] = false
		}, []string{
			ks + `[0].volumes[1].file_system: must be a string, got number 2`,
			ks + `[0].volumes[1].keep_data: must be true or false, got string "no"`,
			ks + `[0].volumes[1].mount: must be a string, got null`,
			ks + `[0].volumes[1].partition_guid: must be a string, got boolean false`,
		}},
		{"unknown disk volume type", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 2)["type"] = "lv"
		}, []string{ks + `[0].volumes[2].type: unknown disk volume type, got string "lv" (want pv, raid, partition, boot or lvm_meta_pool)`}},
		{"volume without type", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 0), "type")
		}, []string{ks + `[0].volumes[0].type: required (pv, raid, partition, boot or lvm_meta_pool)`}},
		{"vg required fields", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2), "id")
			delete(obj(t, m, "ks_meta", "pm_data", "ks_spaces", 3), "volumes")
		}, []string{ks + "[2].id: required", ks + "[3].volumes: required"}},
		{"lv required fields and type", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 0), "name")
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 1)["type"] = "partition"
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2)["min_size"] = "10G"
		}, []string{
			ks + "[1].volumes[0].name: required",
			ks + `[1].volumes[1].type: must be "lv" in a volume group, got string "partition"`,
			ks + `[2].min_size: must be an integer, got string "10G"`,
		}},
		{"no disk", func(t *testing.T, m map[string]any) {
			setSpaces(m, spaces(t, m)[1:])
		}, []string{ks + `: no entry of type "disk" (partition scheme is empty)`}},

		// fuel-agent's scheme-building failures (§2)
		{"lvm_meta_size below 10", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 3)["lvm_meta_size"] = 8
		}, []string{ks + "[0].volumes[3].lvm_meta_size: must be >= 10, got 8"}},
		{"lvm_meta_size of an absent pv is not checked", func(t *testing.T, m map[string]any) {
			v := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)
			v["size"], v["lvm_meta_size"] = 0, 0
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["size"] = 0
		}, nil},
		{"two bootable disks", func(t *testing.T, m map[string]any) {
			setSpaces(m, append(spaces(t, m), map[string]any{
				"type": "disk", "id": "vdb", "name": "vdb", "extra": []any{}, "size": 10240, "free_space": 0, "bootable": true,
				"volumes": []any{map[string]any{"type": "partition", "size": 1000, "mount": "/srv", "file_system": "xfs"}},
			}))
		}, []string{ks + "[6].bootable: only one disk may be bootable, ks_spaces[0] is bootable too"}},
		{"mount not absolute", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["mount"] = "var/log"
		}, []string{ks + `[2].volumes[0].mount: must be an absolute path, "swap" or "none", got "var/log"`}},
		{"unknown file system", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["file_system"] = "reiserfs"
		}, []string{ks + `[2].volumes[0].file_system: unknown file system "reiserfs" (want ext2, ext3, ext4, xfs, swap, vfat or none)`}},
		{"root larger than 16 TiB", func(t *testing.T, m map[string]any) {
			d := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)
			d["size"] = num(20000000)
			obj(t, d, "volumes", 3)["size"] = num(16777300 + 24640)
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 0)["size"] = num(16777217)
		}, []string{ks + "[1].volumes[0].size: the root file system must be at most 16777216 MiB (16 TiB), got 16777217"}},
		{"root partition larger than 16 TiB", func(t *testing.T, m map[string]any) {
			setSpaces(m, append(spaces(t, m)[:1], map[string]any{
				"type": "disk", "id": "sdb", "name": "sdb", "extra": []any{}, "size": num(17000000), "free_space": 0,
				"volumes": []any{map[string]any{"type": "partition", "size": num(16777217), "mount": "/", "file_system": "ext4"}},
			}))
		}, []string{
			ks + "[0].volumes[3].vg: no volume group \"os\" is declared in ks_spaces",
			ks + "[0].volumes[4].vg: no volume group \"logs\" is declared in ks_spaces",
			ks + "[0].volumes[5].vg: no volume group \"mysql\" is declared in ks_spaces",
			ks + "[0].volumes[6].vg: no volume group \"horizon\" is declared in ks_spaces",
			ks + "[0].volumes[7].vg: no volume group \"image\" is declared in ks_spaces",
			ks + "[1].volumes[0].size: the root file system must be at most 16777216 MiB (16 TiB), got 16777217",
		}},
		{"vg with lvs but no pv", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)["size"] = 0
		}, []string{ks + `[2].id: volume group "logs" has logical volumes but no physical volume (a pv volume with size > 0 on a disk) references it`}},
		{"pv of an undeclared vg", func(t *testing.T, m map[string]any) {
			setSpaces(m, append(spaces(t, m)[:2], spaces(t, m)[3:]...)) // drop VG logs
		}, []string{ks + `[0].volumes[4].vg: no volume group "logs" is declared in ks_spaces`}},
		{"volumes larger than the disk", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)["size"] = 80000
		}, []string{ks + "[0].size: the disk has 80000 MiB but its partition, raid and pv volumes need 81620 MiB"}},
		{"lvs larger than their vg", func(t *testing.T, m map[string]any) {
			// PV 10304 MiB, lvm_meta_size 64: 10304-29-28 = 10247 → 10244 MiB of extents.
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["size"] = 10245
		}, []string{ks + `[2].volumes: logical volumes need 10248 MiB (10245 MiB asked, rounded up to 4 MiB extents) but volume group "logs" has 10244 MiB after PV metadata`}},
		{"lvs exactly fill their vg", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["size"] = 10244
		}, nil},
		{"duplicate mount", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 4, "volumes", 0)["mount"] = "/var/log"
		}, []string{ks + `[4].volumes[0].mount: "/var/log" is already mounted by ks_meta.pm_data.ks_spaces[2].volumes[0]`}},
		{"duplicate lv name", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 1)["name"] = "root"
		}, []string{ks + `[1].volumes[1].name: logical volume "root" is already declared by ks_meta.pm_data.ks_spaces[1].volumes[0]`}},
		{"duplicate disk", func(t *testing.T, m map[string]any) {
			setSpaces(m, append(spaces(t, m), map[string]any{
				"type": "disk", "id": "vda", "name": "vda", "extra": []any{}, "size": 10240, "free_space": 0, "volumes": []any{},
			}))
		}, []string{ks + `[6].name: disk "vda" is already declared by ks_spaces[0]`}},

		// strict grammars of what is rendered into files or passed to commands
		{"kernel_params with a command substitution", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data")["kernel_params"] = "console=tty0 $(touch /tmp/pwned)"
		}, []string{"ks_meta.pm_data.kernel_params: holds '$': kernel parameters may not hold $, ` or \\ (they end up in a file a shell reads)"}},
		{"kernel_params with backquotes", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data")["kernel_params"] = "console=tty0 `touch /tmp/pwned`"
		}, []string{"ks_meta.pm_data.kernel_params: holds '`': kernel parameters may not hold $, ` or \\ (they end up in a file a shell reads)"}},
		{"kernel_params with a backslash", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data")["kernel_params"] = `quiet\`
		}, []string{"ks_meta.pm_data.kernel_params: holds '\\\\': kernel parameters may not hold $, ` or \\ (they end up in a file a shell reads)"}},
		{"kernel_params with a newline", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data")["kernel_params"] = "quiet\nGRUB_INIT_TUNE=1"
		}, []string{`ks_meta.pm_data.kernel_params: holds the control character '\n'`}},
		{"kernel_params with quotes and spaces is fine", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data")["kernel_params"] = `console=tty0 foo="a b" bar='c'`
		}, nil},
		{"lv mount with a trailing slash", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["mount"] = "/tmp/"
		}, []string{ks + `[2].volumes[0].mount: "/tmp/" is not a clean path (did you mean "/tmp"?)`}},
		{"lv mount with a dot element", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["mount"] = "/var/./log"
		}, []string{ks + `[2].volumes[0].mount: "/var/./log" is not a clean path (did you mean "/var/log"?)`}},
		{"mount with dot-dot", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["mount"] = "/var/../etc"
		}, []string{ks + `[2].volumes[0].mount: "/var/../etc" is not a clean path (did you mean "/etc"?)`}},
		{"mount with a space", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["mount"] = "/var/my log"
		}, []string{ks + `[2].volumes[0].mount: "/var/my log" holds ' ': a path may hold only letters, digits and / _ . + @ : -`}},
		{"mount with a newline adding an fstab line", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 1)["mount"] = "/boot\nUUID=x / ext4 defaults 0 0"
		}, []string{ks + `[0].volumes[1].mount: "/boot\nUUID=x / ext4 defaults 0 0" holds '\n': a path may hold only letters, digits and / _ . + @ : -`}},
		{"disk_label with a space", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 1)["disk_label"] = "my boot"
		}, []string{ks + `[0].volumes[1].disk_label: "my boot" is not a usable filesystem label (up to 64 letters, digits and _ . : + -, not beginning with - or .)`}},
		{"disk_label like an option", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["disk_label"] = "-O"
		}, []string{ks + `[2].volumes[0].disk_label: "-O" is not a usable filesystem label (up to 64 letters, digits and _ . : + -, not beginning with - or .)`}},
		{"vg name LVM reserves", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2)["id"] = "snapshot"
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)["vg"] = "snapshot"
		}, []string{ks + `[2].id: "snapshot" is not a valid volume group name (reserved by LVM)`}},
		{"vg name with a slash", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2)["id"] = "../logs"
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)["vg"] = "../logs"
		}, []string{ks + `[2].id: "../logs" is not a valid volume group name (letters, digits and + _ . -, not beginning with -, not . or ..)`}},
		{"lv name LVM reserves", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["name"] = "log_tmeta"
		}, []string{ks + `[2].volumes[0].name: "log_tmeta" is not a valid logical volume name (_tmeta is LVM's)`}},
		{"lv name beginning with a dash", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["name"] = "-log"
		}, []string{ks + `[2].volumes[0].name: "-log" is not a valid logical volume name (letters, digits and + _ . -, not beginning with -, not . or ..)`}},
		{"user name with a shell character", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "user_accounts", 1)["name"] = "fuel;reboot"
		}, []string{`ks_meta.user_accounts[1].name: "fuel;reboot" is not a valid user name (a lower-case letter or _, then up to 31 of a-z 0-9 _ . -)`}},
		{"host name not RFC 1123", func(t *testing.T, m map[string]any) {
			m["hostname"] = "node_4.domain.tld"
		}, []string{`hostname: "node_4.domain.tld" is not a valid host name (RFC 1123: labels of letters, digits and -)`}},
		{"host name label too long", func(t *testing.T, m map[string]any) {
			m["hostname"] = "a234567890123456789012345678901234567890123456789012345678901234.tld"
		}, []string{`hostname: "a234567890123456789012345678901234567890123456789012345678901234.tld" is not a valid host name (RFC 1123: labels of letters, digits and -)`}},
		{"udev rule name with a quote", func(t *testing.T, m map[string]any) {
			obj(t, m, "kernel_options")["udevrules"] = `52:54:00:16:ea:68_eth0" RUN+="x`
		}, []string{`kernel_options.udevrules: entry 1 "52:54:00:16:ea:68_eth0\" RUN+=\"x": "eth0\" RUN+=\"x" is not a usable interface name (1 to 15 letters, digits and _ . -)`}},
		{"image_data key not clean", func(t *testing.T, m map[string]any) {
			im := obj(t, m, "ks_meta", "image_data")
			im["/boot/"] = im["/boot"]
			delete(im, "/boot")
		}, []string{`ks_meta.image_data["/boot/"]: the key "/boot/" is not a clean path (did you mean "/boot"?)`}},

		// Class 5: what the configdrive and bootloader steps used to find
		// only after the disks were written.
		{"timezone not a zone name", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["timezone"] = "../../etc/shadow"
		}, []string{`ks_meta.timezone: "../../etc/shadow" is not a time zone name (an IANA name such as Etc/UTC or Europe/Berlin)`}},
		{"timezone not in the zone database", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["timezone"] = "Mars/Olympus_Mons"
		}, []string{`ks_meta.timezone: "Mars/Olympus_Mons" is not a time zone of the IANA database`}},
		{"timezone Local", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["timezone"] = "Local"
		}, []string{`ks_meta.timezone: "Local" is not a time zone name (an IANA name such as Etc/UTC or Europe/Berlin)`}},
		{"timezone with a space", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["timezone"] = "Etc/UTC; reboot"
		}, []string{`ks_meta.timezone: "Etc/UTC; reboot" is not a time zone name (an IANA name such as Etc/UTC or Europe/Berlin)`}},
		{"timezones of the database", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["timezone"] = "America/Argentina/Buenos_Aires"
		}, nil},
		{"master_ip not an address", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["master_ip"] = "fuel.local"
		}, []string{`ks_meta.master_ip: "fuel.local" is not an IP address (NTP, DNS and syslog point there)`}},
		{"gw not an address", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["gw"] = "10.20.0.256"
		}, []string{`ks_meta.gw: "10.20.0.256" is not an IPv4 address (the admin network's gateway)`}},
		{"gw IPv6", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["gw"] = "fe80::1"
		}, []string{`ks_meta.gw: "fe80::1" is not an IPv4 address (the admin network's gateway)`}},
		{"name server not an address", func(t *testing.T, m map[string]any) {
			m["name_servers"] = `"10.20.0.2,dns.example.test"`
		}, []string{`name_servers: "dns.example.test" is not an IP address`}},
		{"search domain not a domain", func(t *testing.T, m map[string]any) {
			m["name_servers_search"] = `"domain.tld bad_domain!"`
		}, []string{`name_servers_search: "bad_domain!" is not a domain name`}},
		{"unknown cloud-init template", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["cloud_init_templates"] = map[string]any{"cloud_config": "cloud_config_fuel_10.0_ubuntu.jinja2"}
		}, []string{`ks_meta.cloud_init_templates.cloud_config: unknown template "cloud_config_fuel_10.0_ubuntu.jinja2" (known: cloud_config_centos.jinja2, cloud_config_fuel_6.1_centos.jinja2, cloud_config_fuel_6.1_ubuntu.jinja2, cloud_config_fuel_7.0_centos.jinja2, cloud_config_fuel_7.0_ubuntu.jinja2, cloud_config_fuel_8.0_ubuntu.jinja2, cloud_config_fuel_9.0_ubuntu.jinja2, cloud_config_ubuntu.jinja2)`}},
		{"mco enabled without its settings", func(t *testing.T, m map[string]any) {
			km := obj(t, m, "ks_meta")
			km["mco_enable"], km["mco_host"], km["mco_connector"] = 1, "", "amqp"
		}, []string{`ks_meta.mco_connector: "amqp": want rabbitmq or stomp`, "ks_meta.mco_host: required when ks_meta.mco_enable is 1"}},
		{"line break in a rendered value", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["mco_password"] = "x\nconnector = evil"
		}, []string{"ks_meta.mco_password: contains a line break"}},
		{"user home and shell not clean paths", func(t *testing.T, m map[string]any) {
			u := obj(t, m, "ks_meta", "user_accounts", 1)
			u["homedir"], u["shell"] = "home/fuel", "/bin/../bash"
		}, []string{
			`ks_meta.user_accounts[1].homedir: "home/fuel" must be an absolute path`,
			`ks_meta.user_accounts[1].shell: "/bin/../bash" is not a clean path (did you mean "/bash"?)`,
		}},
		{"authorized key with a line break", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["authorized_keys"] = []any{"ssh-ed25519 AAAA a\nssh-rsa BBBB intruder"}
			obj(t, m, "ks_meta")["mco_enable"] = 0
		}, []string{"ks_meta.authorized_keys[0]: contains a line break (one key per entry)"}},
		{"sudo rule with a line break", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "user_accounts", 1)["sudo"] = []any{"ALL=(ALL) NOPASSWD: ALL\nfuel ALL=(ALL) ALL"}
		}, []string{"ks_meta.user_accounts[1].sudo[0]: contains a line break"}},
		{"interface name not usable", func(t *testing.T, m map[string]any) {
			ifs := obj(t, m, "interfaces")
			ifs["eth0 up"] = ifs["eth1"]
			delete(ifs, "eth1")
		}, []string{`interfaces["eth0 up"]: "eth0 up" is not a usable interface name (1 to 15 letters, digits and _ . -)`}},

		// image_data
		{"image_data missing", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta"), "image_data")
		}, []string{`ks_meta.image_data: required, with an image for "/"`}},
		{"image_data without /", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "image_data"), "/")
		}, []string{`ks_meta.image_data: must contain an image for "/"`}},
		{"image container", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "image_data", "/")["container"] = "bzip2"
		}, []string{`ks_meta.image_data["/"].container: must be gzip, raw, zstd or xz, got "bzip2"`}},
		{"image uri scheme", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "image_data", "/boot")["uri"] = "ftp://10.20.0.2/boot.img.gz"
		}, []string{`ks_meta.image_data["/boot"].uri: scheme must be http, https or file, got "ftp"`}},
		{"image mirrors", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "image_data", "/")["mirrors"] = []any{"http://rack7-cache/root.img.gz", "ftp://x/root.img.gz", ""}
		}, []string{`ks_meta.image_data["/"].mirrors[1]: scheme must be http, https or file, got "ftp"`, `ks_meta.image_data["/"].mirrors[2]: empty URL`}},
		{"image format", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "image_data", "/")["format"] = "btrfs"
		}, []string{`ks_meta.image_data["/"].format: must be ext2, ext3, ext4 or xfs, got "btrfs"`}},
		{"image for a mount nothing provides", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "image_data")["/var/lib/nova"] = map[string]any{"uri": "file:///images/nova.img", "format": "xfs", "container": "raw"}
		}, []string{`ks_meta.image_data["/var/lib/nova"]: no volume is mounted at "/var/lib/nova" to write this image to`}},
		{"image zstd and xz accepted", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "image_data", "/")["container"] = "zstd"
			obj(t, m, "ks_meta", "image_data", "/boot")["container"] = "xz"
			obj(t, m, "ks_meta", "image_data", "/boot")["uri"] = "https://images.example.test/boot.img.xz"
		}, nil},

		// network and host
		{"hostname missing", func(t *testing.T, m map[string]any) {
			delete(m, "hostname")
		}, []string{"hostname: required"}},
		{"hostname not a string", func(t *testing.T, m map[string]any) {
			m["hostname"] = map[string]any{"fqdn": "x"}
		}, []string{"hostname: must be a string, got object"}},
		{"invalid MAC", func(t *testing.T, m map[string]any) {
			obj(t, m, "interfaces", "eth1")["mac_address"] = "52:54:00:4f:5a"
			obj(t, m, "kernel_options")["udevrules"] = "52:54:00:16:ea:68_eth0,52:54:00:4f:5a:zz_eth1"
		}, []string{
			`interfaces.eth1.mac_address: invalid MAC address "52:54:00:4f:5a"`,
			`kernel_options.udevrules: entry 2 "52:54:00:4f:5a:zz_eth1": invalid MAC address "52:54:00:4f:5a:zz"`,
		}},
		{"admin NIC unknown", func(t *testing.T, m map[string]any) {
			obj(t, m, "kernel_options")["netcfg/choose_interface"] = "52:54:00:00:00:01"
		}, []string{`kernel_options["netcfg/choose_interface"]: no interface has MAC address "52:54:00:00:00:01" (the admin interface)`}},
		{"admin NIC without address", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "interfaces", "eth0"), "ip_address")
			delete(obj(t, m, "interfaces", "eth0"), "netmask")
		}, []string{
			`interfaces.eth0.ip_address: required on the admin interface (MAC 52:54:00:16:ea:68, kernel_options["netcfg/choose_interface"])`,
			`interfaces.eth0.netmask: required on the admin interface (MAC 52:54:00:16:ea:68, kernel_options["netcfg/choose_interface"])`,
		}},
		{"admin NIC MAC case-insensitive", func(t *testing.T, m map[string]any) {
			obj(t, m, "kernel_options")["netcfg/choose_interface"] = "52:54:00:16:EA:68"
		}, nil},
		{"bad ip address", func(t *testing.T, m map[string]any) {
			obj(t, m, "interfaces", "eth0")["ip_address"] = "10.20.0.300"
			obj(t, m, "interfaces", "eth0")["netmask"] = "255.0.255.0"
		}, []string{`interfaces.eth0.ip_address: "10.20.0.300" is not an IP address`, `interfaces.eth0.netmask: "255.0.255.0" is not a netmask`}},
		{"user account without name", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "user_accounts", 1), "name")
		}, []string{"ks_meta.user_accounts[1].name: required"}},
		{"phone_home_url http", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["phone_home_url"] = "http://10.0.2.2:8080/phone-home/node-1"
		}, nil},
		{"phone_home_url not http", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["phone_home_url"] = "ftp://10.0.2.2/ph"
		}, []string{`ks_meta.phone_home_url: "ftp://10.0.2.2/ph" must be an http or https URL`}},
		{"phone_home_url without host", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["phone_home_url"] = "https:///ph"
		}, []string{`ks_meta.phone_home_url: "https:///ph" has no host`}},
		{"phone_home_url not a URL", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["phone_home_url"] = "http://[::1/x"
		}, []string{`ks_meta.phone_home_url: "http://[::1/x" is not a URL`}},
		{"phone_home_url a number", func(t *testing.T, m map[string]any) { // decoded leniently, as Nailgun's strings are
			obj(t, m, "ks_meta")["phone_home_url"] = 8080
		}, []string{`ks_meta.phone_home_url: "8080" must be an http or https URL`}},
		{"kernel_params missing", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta", "pm_data"), "kernel_params")
		}, []string{"ks_meta.pm_data.kernel_params: required"}},
		{"type error outside ks_spaces", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["authorized_keys"] = "ssh-rsa AAAA"
			obj(t, m, "ks_meta")["mco_identity"] = "four"
			obj(t, m, "ks_meta")["puppet_enable"] = "0" // a numeric string is fine
		}, []string{
			`ks_meta.authorized_keys: must be an array, got string "ssh-rsa AAAA"`,
			`ks_meta.mco_identity: must be an integer, got string "four"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
			tt.mutate(t, m)
			got := problemLines(t, encode(t, m))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// Rules that need more than one disk: the 3-disk sample.
func TestRulesThreeDisks(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, m map[string]any)
		want   []string
	}{
		{"/boot raid on every disk is not a duplicate", func(t *testing.T, m map[string]any) {}, nil},
		{"raid volumes with one mount form one md", func(t *testing.T, m map[string]any) {
			for i := 1; i <= 2; i++ {
				vols := obj(t, m, "ks_meta", "pm_data", "ks_spaces", i)
				vols["volumes"] = append(vols["volumes"].([]any), map[string]any{"type": "raid", "size": 0, "mount": "/srv", "file_system": "xfs"})
				obj(t, vols, "volumes", 5)["size"] = 100
				obj(t, vols, "volumes", 4)["size"] = json.Number("64871")
			}
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 5, "volumes", 0)["size"] = json.Number("175147")
		}, nil},
		{"raid and partition on one mount", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 1)["mount"] = "/tmp"
		}, []string{ks + `[1].volumes[1].mount: "/tmp" is already mounted by ks_meta.pm_data.ks_spaces[0].volumes[2]`}},
		{"lvs of a vg spread over three pvs", func(t *testing.T, m map[string]any) {
			// 45540 + 64912 + 64912 = 175364 MiB of extents in VG image.
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 5, "volumes", 0)["size"] = json.Number("175365")
		}, []string{ks + `[5].volumes: logical volumes need 175368 MiB (175365 MiB asked, rounded up to 4 MiB extents) but volume group "image" has 175364 MiB after PV metadata`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "provision_sample_nailgun_3disks.json"))
			tt.mutate(t, m)
			got := problemLines(t, encode(t, m))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRulesPartitioning(t *testing.T) {
	const pp = "partitioning"
	tests := []struct {
		name   string
		mutate func(t *testing.T, m map[string]any)
		want   []string
	}{
		{"begin not before end", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 0, "partitions", 2)["end"] = 225
		}, []string{pp + ".parteds[0].partitions[2].end: must be greater than begin (225), got 225"}},
		{"overlap", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 1, "partitions", 3)["begin"] = 400
		}, []string{pp + ".parteds[1].partitions[3].begin: 400 overlaps partitions[2], which ends at 425"}},
		{"count below 1 and repeated", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 0, "partitions", 0)["count"] = 0
			obj(t, m, pp, "parteds", 0, "partitions", 2)["count"] = 2
		}, []string{pp + ".parteds[0].partitions[0].count: must be >= 1, got 0", pp + ".parteds[0].partitions[2].count: partition number 2 is already used by partitions[1]"}},
		{"references", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "vgs", 1)["pvnames"] = []any{"/dev/sda9"}
			obj(t, m, pp, "lvs", 2)["vgname"] = "images"
			obj(t, m, pp, "parteds", 0, "partitions", 1)["device"] = "/dev/sda"
		}, []string{
			pp + `.fss[4].device: "/dev/mapper/image-glance" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
			pp + `.lvs[2].vgname: "images" is not in partitioning.vgs`,
			pp + `.parteds[0].partitions[1].device: "/dev/sda" is not this table's disk "/dev/sdb"`,
			pp + `.vgs[1].pvnames[0]: "/dev/sda9" is not in partitioning.pvs`,
		}},
		{"ks_spaces may be empty but image needs a file system", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 2)["mount"] = "/srv"
		}, []string{`ks_meta.image_data["/"]: no volume is mounted at "/" to write this image to`}},

		// Scheme mode reaches only the disks it lists: every device a pv,
		// md member, file system or configdrive names is a partition of a
		// listed parted, or an md or LV the scheme creates.
		{"fuel-agent's pv on an unlisted disk", func(t *testing.T, m map[string]any) {
			addSdc3(t, m)
		}, []string{pp + `.pvs[3].name: "/dev/sdc3" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`}},
		{"fs on an unlisted disk", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 1)["device"] = "/dev/sdc1"
		}, []string{pp + `.fss[1].device: "/dev/sdc1" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`}},
		{"fs on a whole listed disk", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 1)["device"] = "/dev/sdb"
		}, []string{pp + `.fss[1].device: "/dev/sdb" is a whole disk; name one of its partitions in partitioning.parteds`}},
		{"fs on a by-id link", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 1)["device"] = "/dev/disk/by-id/wwn-0x5000c500a0b1c2d3-part1"
		}, []string{pp + `.fss[1].device: "/dev/disk/by-id/wwn-0x5000c500a0b1c2d3-part1" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`}},
		{"fs on a path out of /dev", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 1)["device"] = "/dev/../dev/sdc"
		}, []string{pp + `.fss[1].device: "/dev/../dev/sdc" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`}},
		{"lv of another vg", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 2)["device"] = "/dev/mapper/other-root"
		}, []string{pp + `.fss[2].device: "/dev/mapper/other-root" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`}},
		{"md member on an unlisted disk", func(t *testing.T, m map[string]any) {
			m[pp].(map[string]any)["mds"] = []any{map[string]any{"name": "/dev/md0", "level": "mirror", "devices": []any{"/dev/sda4", "/dev/sdc2"}, "spares": []any{"/dev/sdd1"}}}
			obj(t, m, pp, "fss", 1)["device"] = "/dev/md0"
		}, []string{
			pp + `.mds[0].devices[1]: "/dev/sdc2" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
			pp + `.mds[0].spares[0]: "/dev/sdd1" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
		}},
		{"md named like a disk", func(t *testing.T, m map[string]any) {
			m[pp].(map[string]any)["mds"] = []any{map[string]any{"name": "/dev/sdc", "level": "mirror", "devices": []any{"/dev/sda4"}}}
			obj(t, m, pp, "fss", 1)["device"] = "/dev/sdc"
		}, []string{
			pp + `.fss[1].device: "/dev/sdc" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
			pp + `.mds[0].name: must be an md device (/dev/md0, /dev/md/NAME), got "/dev/sdc"`,
		}},
		{"pv on an unlisted disk", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "pvs", 0)["name"] = "/dev/sdc5"
			obj(t, m, pp, "vgs", 1)["pvnames"] = []any{"/dev/sdc5"}
		}, []string{pp + `.pvs[0].name: "/dev/sdc5" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`}},
		{"configdrive partition named on another disk", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 1, "partitions", 6)["name"] = "/dev/sdc7"
		}, []string{pp + `.parteds[1].partitions[6].name: "/dev/sdc7" is not partition 7 of this table's disk "/dev/sda" (want /dev/sda7)`}},
		{"partition named on an unlisted disk", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 0, "partitions", 2)["name"] = "/dev/sdc3"
			obj(t, m, pp, "pvs", 2)["name"] = "/dev/sdc3"
			obj(t, m, pp, "vgs", 0)["pvnames"] = []any{"/dev/sda6", "/dev/sdc3"}
		}, []string{
			pp + `.parteds[0].partitions[2].name: "/dev/sdc3" is not partition 3 of this table's disk "/dev/sdb" (want /dev/sdb3)`,
			pp + `.pvs[2].name: "/dev/sdc3" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
		}},
		{"partition number and name disagree", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 1, "partitions", 3)["name"] = "/dev/sda9"
			obj(t, m, pp, "fss", 1)["device"] = "/dev/sda9"
		}, []string{
			pp + `.fss[1].device: "/dev/sda9" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
			pp + `.parteds[1].partitions[3].name: "/dev/sda9" is not partition 4 of this table's disk "/dev/sda" (want /dev/sda4)`,
		}},
		{"fs_options naming a device", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "fss", 4)["fs_options"] = "-l logdev=/dev/sdc"
			obj(t, m, pp, "fss", 1)["fs_options"] = "-J device=UUID=3f0b"
			obj(t, m, pp, "fss", 0)["fs_options"] = "-b 1024 -m 0"
		}, []string{
			pp + `.fss[1].fs_options: -J "device=UUID=3f0b": "device" is not an accepted sub-option (accepted: fast_commit_size size)`,
			pp + `.fss[4].fs_options: "logdev=/dev/sdc" names a path or device: mkfs options may not`,
		}},
		{"parted on a partition of another parted", func(t *testing.T, m map[string]any) {
			parteds := m[pp].(map[string]any)["parteds"].([]any)
			m[pp].(map[string]any)["parteds"] = append(parteds, map[string]any{"name": "/dev/sda4", "label": "gpt", "partitions": []any{}})
		}, []string{pp + `.parteds[2].name: "/dev/sda4" is a partition partitioning.parteds[1].partitions[3] creates, not a disk`}},
		{"parted not under /dev", func(t *testing.T, m map[string]any) {
			obj(t, m, pp, "parteds", 0)["name"] = "/tmp/../dev/sdb"
		}, []string{
			pp + `.parteds[0].name: must be a device path under /dev (/dev/sda, /dev/nvme0n1), got "/tmp/../dev/sdb"`,
			pp + `.parteds[0].partitions[0].device: "/dev/sdb" is not this table's disk "/tmp/../dev/sdb"`,
			pp + `.parteds[0].partitions[1].device: "/dev/sdb" is not this table's disk "/tmp/../dev/sdb"`,
			pp + `.parteds[0].partitions[2].device: "/dev/sdb" is not this table's disk "/tmp/../dev/sdb"`,
			pp + `.pvs[2].name: "/dev/sdb3" is not a partition of a disk in partitioning.parteds, nor an md or lv this scheme creates`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "simple_nailgun_driver.json"))
			dropSdc3(t, m)
			tt.mutate(t, m)
			got := problemLines(t, encode(t, m))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// One document with five different mistakes reports all five, in document
// order (json.Marshal sorts keys: hostname < ks_meta; in ks_meta
// image_data < pm_data < user_accounts).
func TestFiveMistakes(t *testing.T) {
	m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	delete(m, "hostname")
	obj(t, m, "ks_meta", "image_data", "/")["container"] = "rar"
	obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 3)["lvm_meta_size"] = 8
	obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 5)["size"] = "abc"
	obj(t, m, "ks_meta", "user_accounts", 1)["name"] = ""
	want := []string{
		"hostname: required",
		`ks_meta.image_data["/"].container: must be gzip, raw, zstd or xz, got "rar"`,
		ks + "[0].volumes[3].lvm_meta_size: must be >= 10, got 8",
		ks + `[0].volumes[5].size: must be an integer, got string "abc"`,
		"ks_meta.user_accounts[1].name: required",
	}
	if diff := cmp.Diff(want, problemLines(t, encode(t, m))); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// Problems come in the order of the input, not of the checks.
func TestProblemsInDocumentOrder(t *testing.T) {
	doc := `{"ks_meta": {"user_accounts": [{"password": "x"}],
  "pm_data": {"kernel_params": "", "ks_spaces": [
    {"type": "disk", "id": "sda", "name": "sda", "extra": [], "free_space": 0, "size": 100,
     "volumes": [{"type": "partition", "size": 50, "mount": "srv", "file_system": "zfs"}]}]},
  "image_data": {"/": {"uri": "gopher://x/y", "format": "ext4", "container": "raw"}}},
 "hostname": "",
 "interfaces": {"eth0": {"mac_address": "nope"}}}`
	want := []string{
		"ks_meta.user_accounts[0].name: required",
		ks + `[0].volumes[0].mount: must be an absolute path, "swap" or "none", got "srv"`,
		ks + `[0].volumes[0].file_system: unknown file system "zfs" (want ext2, ext3, ext4, xfs, swap, vfat or none)`,
		`ks_meta.image_data["/"]: no volume is mounted at "/" to write this image to`,
		`ks_meta.image_data["/"].uri: scheme must be http, https or file, got "gopher"`,
		"hostname: required",
		`interfaces.eth0.mac_address: invalid MAC address "nope"`,
	}
	if diff := cmp.Diff(want, problemLines(t, []byte(doc))); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// Validate on a Document built in Go (no input positions): the problems come
// in the order of the checks, deterministically.
func TestValidateBuiltDocument(t *testing.T) {
	d := &Document{
		Hostname:      "n1",
		Interfaces:    map[string]Interface{"eth0": {MACAddress: "52:54:00:00:00:01", IPAddress: "10.0.0.2", Netmask: "24"}},
		KernelOptions: KernelOptions{ChooseInterface: "52:54:00:00:00:01"},
		KsMeta: KsMeta{
			ImageData: map[string]ImageData{"/": {URI: "file:///img/root.raw", Format: "ext4", Container: "raw"}},
			PmData: PmData{KsSpaces: []Space{
				{Type: SpaceDisk, ID: "sda", Name: "sda", Size: 1000, Volumes: []Volume{
					{Type: VolPartition, Size: 900, Mount: "/", FileSystem: "ext4"},
					{Type: "lvm", Size: 10},
				}},
			}},
		},
	}
	err := d.Validate()
	want := "ks_meta.pm_data.ks_spaces[0].volumes[1].type: unknown disk volume type, got \"lvm\" (want pv, raid, partition, boot or lvm_meta_pool)"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
	d.KsMeta.PmData.KsSpaces[0].Volumes = d.KsMeta.PmData.KsSpaces[0].Volumes[:1]
	if err := d.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, m map[string]any)
		want   []string
	}{
		{"none", func(t *testing.T, m map[string]any) {}, nil},
		{"image file system differs from the volume's", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 1, "volumes", 0)["file_system"] = "xfs"
		}, []string{`ks_meta.image_data["/"].format: the image holds ext4 but ks_meta.pm_data.ks_spaces[1].volumes[0] declares xfs; the image's file system is what the node gets`}},
		{"no admin interface", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "kernel_options"), "netcfg/choose_interface")
		}, []string{`kernel_options["netcfg/choose_interface"]: not set: no admin interface, the provisioned node's network cannot be configured`}},
		{"nailgun accounting over the disk size", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)["size"] = 81800 // 81620 of real volumes fit
		}, []string{ks + "[0].size: the disk has 81800 MiB but its volumes, with Nailgun's boot and lvm_meta_pool reservations, add up to 81920 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
			tt.mutate(t, m)
			doc, err := ParseAndValidate(encode(t, m))
			if err != nil {
				t.Fatalf("ParseAndValidate: %v", err)
			}
			if diff := cmp.Diff(tt.want, lines(doc.Warnings())); diff != "" {
				t.Errorf("Warnings() (-want +got):\n%s", diff)
			}
		})
	}

	// A key given twice (only visible in the raw text).
	doc, err := ParseAndValidate([]byte(`{"hostname": "a", "hostname": "node-1", ` + string(readFixture(t, "provision_fuel90_ubuntu_1disk.json"))[1:]))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hostname: given more than once; the last value is used"} // three times, one warning
	if diff := cmp.Diff(want, lines(doc.Warnings())); diff != "" {
		t.Errorf("Warnings() (-want +got):\n%s", diff)
	}
}

// Parse then Validate separately: Validate leaves out Parse's problems and
// their follow-ons, so the two lists together are ParseAndValidate's.
func TestParseThenValidate(t *testing.T) {
	m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 4)["size"] = "10304" // a string: schema error, PV left 0
	obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 5)["size"] = json.Number("1e30")
	obj(t, m, "ks_meta", "image_data", "/")["container"] = "lzma"
	b := encode(t, m)

	doc, err := Parse(b)
	var ve *ValidationError
	if !errors.As(err, &ve) || doc == nil {
		t.Fatalf("Parse = %v, %v; want a document and a *ValidationError", doc, err)
	}
	wantParse := []string{
		ks + `[0].volumes[4].size: must be an integer, got string "10304"`,
		ks + `[0].volumes[5].size: must be an integer, got number 1e30 (out of range)`,
	}
	if diff := cmp.Diff(wantParse, lines(ve.Problems)); diff != "" {
		t.Errorf("Parse problems (-want +got):\n%s", diff)
	}
	wantValidate := []string{`ks_meta.image_data["/"].container: must be gzip, raw, zstd or xz, got "lzma"`}
	err = doc.Validate()
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	if diff := cmp.Diff(wantValidate, lines(ve.Problems)); diff != "" {
		t.Errorf("Validate problems (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(append(wantValidate, wantParse...), problemLines(t, b)); diff != "" {
		t.Errorf("ParseAndValidate problems (-want +got):\n%s", diff)
	}
}

// dropSdc3 removes, from fuel-agent's nailgun_simple test document, the PV
// on /dev/sdc3 that no parted lists; addSdc3 puts it back.
func dropSdc3(t *testing.T, m map[string]any) {
	t.Helper()
	p := m["partitioning"].(map[string]any)
	pvs := p["pvs"].([]any)
	if pvs[3].(map[string]any)["name"] != "/dev/sdc3" {
		t.Fatalf("fixture changed: %v", pvs)
	}
	p["pvs"] = pvs[:3]
	vg := obj(t, m, "partitioning", "vgs", 0)
	vg["pvnames"] = vg["pvnames"].([]any)[:2]
}

func addSdc3(t *testing.T, m map[string]any) {
	t.Helper()
	p := m["partitioning"].(map[string]any)
	p["pvs"] = append(p["pvs"].([]any), map[string]any{"name": "/dev/sdc3", "metadatasize": 28, "metadatacopies": 2})
	vg := obj(t, m, "partitioning", "vgs", 0)
	vg["pvnames"] = append(vg["pvnames"].([]any), "/dev/sdc3")
}

// What a configdrive needs beyond Validate's rules, and Validate's rules of
// the fields it reads (not the storage layout's).
func TestValidateConfigdrive(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, m map[string]any)
		want   []string
	}{
		{"fixture", func(t *testing.T, m map[string]any) {}, nil},
		{"layout problems are not the configdrive's", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0, "volumes", 3)["lvm_meta_size"] = 8
		}, nil},
		{"no admin interface", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "kernel_options"), "netcfg/choose_interface")
		}, []string{`kernel_options["netcfg/choose_interface"]: required: the admin interface's MAC address (the configdrive configures its network)`}},
		{"admin netmask as a prefix length", func(t *testing.T, m map[string]any) {
			obj(t, m, "interfaces", "eth0")["netmask"] = "24"
		}, []string{`interfaces.eth0.netmask: "24" is not a dotted IPv4 netmask`}},
		{"admin address IPv6", func(t *testing.T, m map[string]any) {
			obj(t, m, "interfaces", "eth0")["ip_address"] = "fd00::2"
		}, []string{`interfaces.eth0.ip_address: "fd00::2" is not an IPv4 address (the admin interface needs one)`}},
		{"no master_ip", func(t *testing.T, m map[string]any) {
			delete(obj(t, m, "ks_meta"), "master_ip")
		}, []string{"ks_meta.master_ip: required (NTP, DNS and syslog point there)"}},
		{"bad timezone is reported here too", func(t *testing.T, m map[string]any) {
			obj(t, m, "ks_meta")["timezone"] = "Nowhere/Land"
		}, []string{`ks_meta.timezone: "Nowhere/Land" is not a time zone of the IANA database`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
			tt.mutate(t, m)
			doc, _ := Parse(encode(t, m))
			if doc == nil {
				t.Fatal("Parse returned no document")
			}
			var got []string
			var ve *ValidationError
			if err := doc.ValidateConfigdrive(); errors.As(err, &ve) {
				got = lines(ve.Problems)
			} else if err != nil {
				t.Fatalf("ValidateConfigdrive = %v, want a *ValidationError", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ValidateConfigdrive problems (-want +got):\n%s", diff)
			}
		})
	}
}

// A type error leaves one value unknown; every rule that does not need it
// still runs, on that disk and volume too (issue 15, class 5: a disk's
// size given as a string used to hide that disk's other problems).
func TestTypeErrorHidesNothing(t *testing.T) {
	m := generic(t, readFixture(t, "provision_fuel90_ubuntu_1disk.json"))
	disk := obj(t, m, "ks_meta", "pm_data", "ks_spaces", 0)
	disk["size"] = "eighty gigabytes"
	obj(t, disk, "volumes", 1)["mount"] = "boot"
	obj(t, disk, "volumes", 3)["lvm_meta_size"] = 8
	obj(t, disk, "volumes", 4)["vg"] = "nope"
	obj(t, disk, "volumes", 5)["size"] = "abc"
	obj(t, disk, "volumes", 5)["lvm_meta_size"] = 4
	obj(t, m, "ks_meta", "pm_data", "ks_spaces", 2, "volumes", 0)["mount"] = "/var/./log"
	obj(t, m, "ks_meta", "image_data", "/")["container"] = "rar"
	m["hostname"] = "node_1"
	want := []string{
		`hostname: "node_1" is not a valid host name (RFC 1123: labels of letters, digits and -)`,
		`ks_meta.image_data["/"].container: must be gzip, raw, zstd or xz, got "rar"`,
		ks + `[0].size: must be an integer, got string "eighty gigabytes"`,
		ks + `[0].volumes[1].mount: must be an absolute path, "swap" or "none", got "boot"`,
		ks + `[0].volumes[3].lvm_meta_size: must be >= 10, got 8`,
		ks + `[0].volumes[4].vg: no volume group "nope" is declared in ks_spaces`,
		ks + `[0].volumes[5].lvm_meta_size: must be >= 10, got 4`,
		ks + `[0].volumes[5].size: must be an integer, got string "abc"`,
		ks + `[2].id: volume group "logs" has logical volumes but no physical volume (a pv volume with size > 0 on a disk) references it`,
		ks + `[2].volumes[0].mount: "/var/./log" is not a clean path (did you mean "/var/log"?)`,
	}
	if diff := cmp.Diff(want, problemLines(t, encode(t, m))); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
