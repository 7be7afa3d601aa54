package inventory

// Nailgun's discovery document: what nailgun-agent (fuel-nailgun-agent's
// `agent`, Ruby, run from cron on a bootstrap node) POSTs to Nailgun's
// /api/nodes/ so that an existing Nailgun registers the node. The field
// names, units and value shapes are the agent's (_data, _detailed,
// physical_data_storage_devices, _system_info): sizes in bytes, disk names
// relative to /dev, removable as sysfs's "0"/"1" string, NIC speeds in
// Mbit/s or null, pxe true on the interface the node booted from.

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"sort"
	"strings"
)

// NailgunDiscovery is the body nailgun-agent POSTs (and PUTs) to Nailgun.
type NailgunDiscovery struct {
	MAC          string      `json:"mac"` // the admin (PXE) interface's
	IP           string      `json:"ip"`  // its IPv4 address
	OSPlatform   string      `json:"os_platform"`
	Manufacturer string      `json:"manufacturer,omitempty"`
	PlatformName string      `json:"platform_name,omitempty"`
	Meta         NailgunMeta `json:"meta"`
	// Status is "discover" on a bootstrap node (/etc/nailgun_systemtype
	// says bootstrap), absent otherwise.
	Status  string `json:"status,omitempty"`
	IsAgent bool   `json:"is_agent"`
	// AgentChecksum lets Nailgun skip an unchanged report: a SHA-1 of the
	// rest of the document (nailgun-agent hashes its Ruby hash; Nailgun
	// only compares the value with the node's previous one).
	AgentChecksum string `json:"agent_checksum"`
}

// NailgunMeta is the discovery's "meta": the hardware.
type NailgunMeta struct {
	System       NailgunSystem      `json:"system"`
	Interfaces   []NailgunInterface `json:"interfaces"`
	CPU          NailgunCPU         `json:"cpu"`
	Disks        []NailgunDisk      `json:"disks"`
	Memory       NailgunMemory      `json:"memory"`
	PCIDevices   map[string]any     `json:"pci_devices"`   // lshw -json; {} without lshw, as the agent sends
	NUMATopology any                `json:"numa_topology"` // lstopo's; null without it, as the agent sends
}

// NailgunSystem is meta.system (empty values left out, as the agent does).
type NailgunSystem struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Serial       string `json:"serial,omitempty"`
	UUID         string `json:"uuid,omitempty"`
	Product      string `json:"product,omitempty"`
	FQDN         string `json:"fqdn,omitempty"`
}

// NailgunInterface is one physical Ethernet interface of meta.interfaces.
type NailgunInterface struct {
	Name                string               `json:"name"`
	InterfaceProperties NailgunNICProperties `json:"interface_properties"`
	State               string               `json:"state"` // up or down
	MAC                 string               `json:"mac"`
	PXE                 bool                 `json:"pxe"`
	Driver              string               `json:"driver,omitempty"`
	MaxSpeed            *int                 `json:"max_speed"`     // Mbit/s
	CurrentSpeed        *int                 `json:"current_speed"` // Mbit/s, null when unknown
	IP                  string               `json:"ip,omitempty"`
	Netmask             string               `json:"netmask,omitempty"`
	OffloadingModes     []any                `json:"offloading_modes"`
}

// NailgunNICProperties is interface_properties.
type NailgunNICProperties struct {
	SRIOV    NailgunSRIOV `json:"sriov"`
	PCIID    string       `json:"pci_id"`
	NUMANode *int         `json:"numa_node"`
}

// NailgunSRIOV is interface_properties.sriov (the agent's DEFAULT_SRIOV
// when lspci shows no SR-IOV capability).
type NailgunSRIOV struct {
	TotalVFs  int    `json:"sriov_totalvfs"`
	Available bool   `json:"available"`
	PCIID     string `json:"pci_id"`
}

// NailgunCPU is meta.cpu.
type NailgunCPU struct {
	Total int              `json:"total"` // logical CPUs
	Real  int              `json:"real"`  // sockets
	Spec  []NailgunCPUSpec `json:"spec"`  // one per logical CPU
}

// NailgunCPUSpec is one logical CPU.
type NailgunCPUSpec struct {
	Frequency *int   `json:"frequency"` // MHz
	Model     string `json:"model"`
}

// NailgunDisk is one disk of meta.disks.
type NailgunDisk struct {
	Name      string   `json:"name"`  // relative to /dev: sda, cciss/c0d0, mapper/mpatha
	Model     *string  `json:"model"` // null when the kernel gives none (virtio)
	Size      int64    `json:"size"`  // bytes
	Disk      string   `json:"disk"`  // by-path link relative to /dev, else the kernel name
	Extra     []string `json:"extra"` // by-id links relative to /dev
	Removable string   `json:"removable"`
	Paths     *string  `json:"paths"` // multipath: its paths' by-path links, ", "-joined
}

// NailgunMemory is meta.memory (the total only: dmidecode's slots and
// devices are not read).
type NailgunMemory struct {
	Total int64 `json:"total"` // bytes
}

// NailgunHost is what the inventory does not hold and the discovery needs:
// the node's addresses, which interface it booted from, its name.
type NailgunHost struct {
	Addrs      map[string][]netip.Prefix // by NIC name
	AdminMAC   string                    // the PXE interface (BOOTIF); "": the first NIC with an IPv4 address
	FQDN       string
	OSPlatform string // default "ubuntu", what Fuel's bootstrap reports
	Bootstrap  bool   // this is a bootstrap node: status "discover"
}

// NailgunDiskID is how nailgun-agent names a disk in ks_spaces and in
// meta.disks: id its by-path link relative to /dev (the kernel name when
// it has none), extra its by-id links relative to /dev.
func NailgunDiskID(d Disk) (id string, extra []string) {
	id = d.Name
	if len(d.ByPath) > 0 {
		id = strings.TrimPrefix(d.ByPath[0], "/dev/")
	}
	extra = []string{}
	for _, l := range d.ByID {
		extra = append(extra, strings.TrimPrefix(l, "/dev/"))
	}
	return id, extra
}

// Nailgun renders inv (and what host adds) as nailgun-agent's discovery
// document. It is pure.
func Nailgun(inv *Inventory, host NailgunHost) NailgunDiscovery {
	d := NailgunDiscovery{
		OSPlatform:   host.OSPlatform,
		Manufacturer: inv.DMI.Vendor,
		PlatformName: inv.DMI.Product,
		IsAgent:      true,
		Meta: NailgunMeta{
			System: NailgunSystem{Manufacturer: inv.DMI.Vendor, Serial: inv.DMI.Serial, UUID: inv.DMI.UUID,
				Product: inv.DMI.Product, FQDN: host.FQDN},
			Interfaces: []NailgunInterface{},
			Disks:      []NailgunDisk{},
			Memory:     NailgunMemory{Total: inv.Memory.TotalBytes},
			PCIDevices: map[string]any{},
		},
	}
	if d.OSPlatform == "" {
		d.OSPlatform = "ubuntu"
	}
	if host.Bootstrap {
		d.Status = "discover"
	}
	if d.Meta.System.Manufacturer == "Not Specified" {
		d.Meta.System.Manufacturer = ""
	}
	adminMAC := strings.ToLower(host.AdminMAC)
	for _, n := range inv.NICs {
		v4 := firstV4(host.Addrs[n.Name])
		if adminMAC == "" && v4.IsValid() {
			adminMAC = strings.ToLower(n.MAC)
		}
	}
	for _, n := range inv.NICs {
		mac := strings.ToLower(n.MAC)
		ni := NailgunInterface{
			Name: n.Name, MAC: mac, PXE: mac == adminMAC, Driver: n.Driver, State: "down",
			InterfaceProperties: NailgunNICProperties{SRIOV: NailgunSRIOV{}},
			OffloadingModes:     []any{},
		}
		if n.Link {
			ni.State = "up"
		}
		if n.SpeedMbps > 0 {
			s := n.SpeedMbps
			ni.MaxSpeed, ni.CurrentSpeed = &s, &s
		}
		if p := firstV4(host.Addrs[n.Name]); p.IsValid() {
			ni.IP, ni.Netmask = p.Addr().String(), netmask(p.Bits())
			if mac == adminMAC {
				d.MAC, d.IP = mac, ni.IP
			}
		}
		d.Meta.Interfaces = append(d.Meta.Interfaces, ni)
	}
	if d.MAC == "" {
		d.MAC = adminMAC
	}
	sockets := inv.CPU.Sockets
	if sockets == 0 && inv.CPU.Count > 0 {
		sockets = 1
	}
	d.Meta.CPU = NailgunCPU{Total: inv.CPU.Count, Real: sockets, Spec: []NailgunCPUSpec{}}
	for i := 0; i < inv.CPU.Count; i++ {
		d.Meta.CPU.Spec = append(d.Meta.CPU.Spec, NailgunCPUSpec{Model: strings.Join(strings.Fields(inv.CPU.Model), " ")})
	}
	for _, k := range inv.Disks {
		id, extra := NailgunDiskID(k)
		nd := NailgunDisk{Name: k.Name, Size: k.SizeBytes, Disk: id, Extra: extra, Removable: "0"}
		if k.Model != "" {
			m := k.Model
			nd.Model = &m
		}
		if k.Removable {
			nd.Removable = "1"
		}
		d.Meta.Disks = append(d.Meta.Disks, nd)
	}
	d.AgentChecksum = nailgunChecksum(d)
	return d
}

// nailgunChecksum is the SHA-1 of the document's JSON without its checksum.
func nailgunChecksum(d NailgunDiscovery) string {
	d.AgentChecksum = ""
	b, _ := json.Marshal(d) // plain structs: cannot fail
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

func firstV4(ps []netip.Prefix) netip.Prefix {
	sorted := append([]netip.Prefix(nil), ps...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Addr().Is4() && !sorted[j].Addr().Is4() })
	for _, p := range sorted {
		if p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p
		}
	}
	return netip.Prefix{}
}

// netmask is the dotted IPv4 mask of a prefix length.
func netmask(bits int) string {
	var m [4]byte
	for i := 0; i < bits && i < 32; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}
