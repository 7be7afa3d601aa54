package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/imprint-dev/imprint/inventory"
	"github.com/imprint-dev/imprint/provision"
)

// Sizes of the composed layout, MiB (Nailgun's volume manager, docs/fuel-agent.md
// §3).
const (
	// nailgunBootReserveMiB is Nailgun's "boot" volume: its accounting for
	// the bios_grub, UEFI and configdrive partitions and their gaps, which
	// fuel-agent creates itself (24 + 200 + 20 MiB and 1 MiB gaps).
	nailgunBootReserveMiB = 300
	bootPartitionMiB      = 200
	lvmMetaSizeMiB        = 64
	// minRootMiB is the smallest root LV composed without an image size to
	// check against.
	minRootMiB = 1024
	mib        = 1 << 20
)

// DefaultKernelParams is the provisioned OS's kernel command line
// (pm_data.kernel_params → GRUB_CMDLINE_LINUX) when a node sets none:
// kernel NIC names, so the eth* names of the bootstrap's inventory (written
// to kernel_options.udevrules and the network configuration) stay valid, and
// the serial console last, so it is /dev/console.
const DefaultKernelParams = "console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"

// DefaultProfile is the Nailgun profile of composed documents.
const DefaultProfile = "debian_12_x86_64"

// ComposeRequest is everything a node's provision.json is made of.
type ComposeRequest struct {
	Node      Node
	UID       int                  // Nailgun's node id (uid, mco_identity)
	Inventory *inventory.Inventory // from the discovery
	Addresses []string             // the node's IPs, from the discovery
	// Images are the target images, with the URLs the node fetches them at.
	Images []ComposeImage
	// Network is the admin network the node's static configuration is
	// written for.
	Network Network
	// MasterIP is the controller's address as the node sees it (NTP, DNS,
	// syslog in Fuel's templates).
	MasterIP string
	// PhoneHomeURL is set as ks_meta.phone_home_url (imprint extension).
	PhoneHomeURL string
	Profile      string // default DefaultProfile
	// ConfigdriveFormat is set as ks_meta.configdrive_format (imprint
	// extension); empty: left out, the agent's setting applies.
	ConfigdriveFormat string
}

// ComposeImage is one image_data entry.
type ComposeImage struct {
	MountPoint string
	URI        string
	Format     string // ext2|ext3|ext4|xfs
	Container  string // gzip|raw|zstd|xz
	RawSize    int64  // bytes, from the Fuel metadata YAML; 0 if unknown
	// Mirrors are more URLs of the same file (image_data mirrors,
	// imprint's extension), tried in turn when URI fails.
	Mirrors []string
}

// Network is the admin network of the nodes.
type Network struct {
	Prefix      netip.Prefix // 10.0.2.0/24
	Gateway     netip.Addr
	NameServers []netip.Addr
}

// Compose renders a Nailgun-format provision.json (the per-node dict Astute
// uploads as /tmp/provision.json) for a discovered node. It is pure.
//
// Storage follows Fuel's single-disk layout on the first eligible disk (not
// removable, not read-only, not USB, large enough; in kernel-name order, as
// Nailgun sorts disks), identified the way nailgun-agent records it: id =
// the by-path link relative to /dev (the kernel name without one), extra =
// the by-id links relative to /dev. Its volumes: Nailgun's 300 MiB "boot"
// reservation (fuel-agent adds bios_grub, the UEFI placeholder and the
// configdrive partition itself), a 200 MiB /boot partition when a /boot image
// is given, the lvm_meta_pool, and the rest as a PV of VG "os" holding the
// root LV ("/", the image's file system) and a swap LV sized by Nailgun's
// rule from the RAM, at most a quarter of the VG.
//
// Without a /boot image /boot stays in the root LV: fuel-agent never copies
// files out of the root image into a separate /boot file system (it would be
// created empty, hiding the image's kernels), and grub reads /boot from LVM.
func Compose(req ComposeRequest) ([]byte, error) {
	n := req.Node
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if req.Inventory == nil {
		return nil, fmt.Errorf("compose %s: the discovery carries no inventory", n.MAC)
	}
	var root *ComposeImage
	var boot *ComposeImage
	for i := range req.Images {
		switch req.Images[i].MountPoint {
		case "/":
			root = &req.Images[i]
		case "/boot":
			boot = &req.Images[i]
		}
	}
	if root == nil {
		bad("no image for /")
	}

	// Admin NIC: the inventory NIC with the node's MAC; its address the
	// discovery's IPv4 address inside the admin network.
	var adminName string
	ifaces := map[string]provision.Interface{}
	var udev []string
	nics := append([]inventory.NIC(nil), req.Inventory.NICs...)
	sort.Slice(nics, func(i, j int) bool { return nics[i].Name < nics[j].Name })
	for _, nic := range nics {
		mac := strings.ToLower(nic.MAC)
		if nic.Name == "" || mac == "" {
			continue
		}
		ifaces[nic.Name] = provision.Interface{MACAddress: mac, Static: "0"}
		udev = append(udev, mac+"_"+nic.Name)
		if mac == n.MAC {
			adminName = nic.Name
		}
	}
	if adminName == "" {
		bad("no NIC of the inventory has MAC %s", n.MAC)
	}
	ip, err := adminAddress(n, req.Addresses, req.Network.Prefix)
	if err != nil {
		bad("%v", err)
	}

	disk, why := chooseDisk(req.Inventory)
	if disk == nil {
		bad("no disk to provision: %s", why)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("compose %s: %w", n.MAC, errors.Join(errs...))
	}

	sizeMiB := disk.SizeBytes / mib
	reserve := int64(nailgunBootReserveMiB)
	volumes := []provision.Volume{{Type: provision.VolBoot, Size: nailgunBootReserveMiB}}
	if boot != nil {
		reserve += bootPartitionMiB
		volumes = append(volumes, provision.Volume{Type: provision.VolPartition, Mount: "/boot", FileSystem: boot.Format, Name: "Boot", Size: bootPartitionMiB})
	}
	volumes = append(volumes, provision.Volume{Type: provision.VolLVMMetaPool, Size: 0})
	pv := sizeMiB - reserve
	usable := provision.PVUsableMiB(pv, lvmMetaSizeMiB)
	swap := min(swapMiB(req.Inventory.Memory.TotalBytes/mib), usable/4) / provision.ExtentMiB * provision.ExtentMiB
	rootMiB := usable - swap
	need := int64(minRootMiB)
	if root.RawSize > 0 {
		need = max(need, (root.RawSize+mib-1)/mib)
	}
	if rootMiB < need {
		return nil, fmt.Errorf("compose %s: disk %s (%d MiB) leaves %d MiB for the root LV, the image %s needs %d MiB", n.MAC, disk.Path, sizeMiB, rootMiB, root.URI, need)
	}
	volumes = append(volumes, provision.Volume{Type: provision.VolPV, VG: "os", LVMMetaSize: lvmMetaSizeMiB, Size: pv})
	lvs := []provision.Volume{{Type: provision.VolLV, Name: "root", Mount: "/", FileSystem: root.Format, Size: rootMiB}}
	if swap > 0 {
		lvs = append(lvs, provision.Volume{Type: provision.VolLV, Name: "swap", Mount: "swap", FileSystem: "swap", Size: swap})
	}

	// free_space is informational (Nailgun's accounting; fuel-agent ignores
	// it): what the volumes could use after the boot reservation.
	id, extra := nailgunDiskID(*disk)
	spaces := []provision.Space{
		{Type: provision.SpaceDisk, ID: id, Name: disk.Name, Extra: extra, Size: sizeMiB, FreeSpace: sizeMiB - nailgunBootReserveMiB, Bootable: true, Volumes: volumes},
		{Type: provision.SpaceVG, ID: "os", Label: "Base System", MinSize: rootMiB + swap, AllocateSize: "min", Volumes: lvs},
	}

	hostname := strings.TrimSuffix(n.Hostname, ".")
	short, domain, _ := strings.Cut(hostname, ".")
	adminIfc := ifaces[adminName]
	adminIfc.IPAddress = ip.String()
	adminIfc.Netmask = netmask(req.Network.Prefix)
	adminIfc.DNSName = hostname
	ifaces[adminName] = adminIfc
	extraIfc := map[string]map[string]string{}
	for name := range ifaces {
		onboot := "no"
		if name == adminName {
			onboot = "yes"
		}
		extraIfc[name] = map[string]string{"onboot": onboot, "peerdns": "no"}
	}
	var ns []string
	for _, a := range req.Network.NameServers {
		ns = append(ns, a.String())
	}
	kernelParams := n.KernelParams
	if kernelParams == "" {
		kernelParams = DefaultKernelParams
	}
	profile := req.Profile
	if profile == "" {
		profile = DefaultProfile
	}
	images := map[string]provision.ImageData{}
	for _, im := range req.Images {
		images[im.MountPoint] = provision.ImageData{URI: im.URI, Format: im.Format, Container: im.Container, Mirrors: im.Mirrors}
	}
	// Nailgun wraps these values in literal double quotes; fuel-agent (and
	// provision.Parse) strip them.
	quote := func(s string) string { return `"` + s + `"` }
	var authorized []string
	for _, k := range n.SSHKeys {
		authorized = append(authorized, quote(k))
	}
	uid := strconv.Itoa(req.UID)
	doc := provision.Document{
		Profile:           profile,
		Hostname:          hostname,
		Name:              short,
		SlaveName:         short,
		UID:               uid,
		Interfaces:        ifaces,
		InterfacesExtra:   extraIfc,
		KernelOptions:     provision.KernelOptions{ChooseInterface: n.MAC, UdevRules: strings.Join(udev, ",")},
		NameServers:       quote(strings.Join(ns, ",")),
		NameServersSearch: quote(domain),
		NetbootEnabled:    "1",
		KsMeta: provision.KsMeta{
			PmData:         provision.PmData{KsSpaces: spaces, KernelParams: kernelParams},
			ImageData:      images,
			MasterIP:       req.MasterIP,
			Gw:             req.Network.Gateway.String(),
			AdminNet:       req.Network.Prefix.Masked().String(),
			Timezone:       "Etc/UTC",
			AuthorizedKeys: authorized,
			AuthKey:        quote(""),
			UserAccounts:   []provision.UserAccount{{Name: "root", Homedir: "/root", SSHKeys: append([]string(nil), n.SSHKeys...)}},
			RepoSetup:      provision.RepoSetup{Repos: []provision.Repo{}},
			PuppetMaster:   "localhost",
			McoConnector:   "rabbitmq",
			McoIdentity:    req.UID,
			CloudInitTemplates: map[string]string{
				"boothook":     "boothook_fuel_9.0_ubuntu.jinja2",
				"cloud_config": "cloud_config_fuel_9.0_ubuntu.jinja2",
				"meta_data":    "meta_data_fuel_9.0_ubuntu.jinja2",
			},
			FuelVersion:       "9.0",
			ConfigdriveFormat: req.ConfigdriveFormat,
		},
	}
	return withPhoneHome(doc, req.PhoneHomeURL)
}

// withPhoneHome marshals doc and adds ks_meta.phone_home_url, imprint's
// extension the agent hands to the configdrive's cloud-init phone_home
// (provision.Document has no field for it; unknown keys are tolerated).
func withPhoneHome(doc provision.Document, url string) ([]byte, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("compose: encode: %w", err)
	}
	if url == "" {
		return indent(b)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("compose: re-decode: %w", err)
	}
	var km map[string]json.RawMessage
	if err := json.Unmarshal(top["ks_meta"], &km); err != nil {
		return nil, fmt.Errorf("compose: re-decode ks_meta: %w", err)
	}
	u, _ := json.Marshal(url)
	km["phone_home_url"] = u
	if top["ks_meta"], err = json.Marshal(km); err != nil {
		return nil, err
	}
	if b, err = json.Marshal(top); err != nil {
		return nil, err
	}
	return indent(b)
}

func indent(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	return append(out, '\n'), err
}

// chooseDisk picks the disk to install on, or says why none fits.
func chooseDisk(inv *inventory.Inventory) (*inventory.Disk, string) {
	disks := append([]inventory.Disk(nil), inv.Disks...)
	sort.SliceStable(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	minMiB := int64(nailgunBootReserveMiB + bootPartitionMiB + 2*lvmMetaSizeMiB + minRootMiB)
	var why []string
	for i := range disks {
		d := &disks[i]
		switch {
		case d.Removable:
			why = append(why, d.Name+" is removable")
		case d.ReadOnly:
			why = append(why, d.Name+" is read-only")
		case d.Bus == "usb":
			why = append(why, d.Name+" is on USB")
		case d.SizeBytes/mib < minMiB:
			why = append(why, fmt.Sprintf("%s has %d MiB, less than %d", d.Name, d.SizeBytes/mib, minMiB))
		default:
			return d, ""
		}
	}
	if len(why) == 0 {
		return nil, "the inventory lists no disk"
	}
	return nil, strings.Join(why, "; ")
}

// nailgunDiskID is how nailgun-agent names a disk (inventory.NailgunDiskID).
func nailgunDiskID(d inventory.Disk) (id string, extra []string) { return inventory.NailgunDiskID(d) }

// swapMiB is Nailgun's swap size for ram MiB of memory: twice the RAM up
// to 2 GiB, the RAM up to 8 GiB, half of it up to 64 GiB, else 4 GiB.
func swapMiB(ram int64) int64 {
	switch {
	case ram <= 0:
		return 1024
	case ram <= 2048:
		return 2 * ram
	case ram <= 8192:
		return ram
	case ram <= 65536:
		return ram / 2
	}
	return 4096
}

func adminAddress(n Node, addrs []string, prefix netip.Prefix) (netip.Addr, error) {
	if n.IP != "" {
		a, err := netip.ParseAddr(n.IP)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("node ip %q: %w", n.IP, err)
		}
		return a, nil
	}
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err == nil && a.Is4() && prefix.Contains(a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("none of the node's addresses %v is in the admin network %s (set the node's IP)", addrs, prefix)
}

func netmask(p netip.Prefix) string {
	var m [4]byte
	for i := 0; i < p.Bits() && i < 32; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}
