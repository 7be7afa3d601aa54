#!/usr/bin/env python3
"""gen_fixtures.py: write the hand-built sysfs fixtures (sysfs/*.tree) for
hardware this VM does not have, laid out as a Debian 12 kernel (6.1) lays
it out: the same directories, uevent files, subsystem/driver/class links and
VPD pages (from mkvpd.py), relative symlinks throughout.

    python3 gen_fixtures.py   # rewrites sysfs/server-*.tree and sysfs/vm-scsi.tree

this-vm.tree is not generated: capture.py took it from this machine.
"""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


class Tree:
    def __init__(self, comment):
        self.lines = ["# " + l for l in comment.strip().splitlines()]
        self.dirs = set()

    def d(self, p):
        if p not in self.dirs:
            self.dirs.add(p)
            self.lines.append("d " + p)

    def f(self, p, v):
        self.d(os.path.dirname(p))
        self.lines.append('f %s "%s"' % (p, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")))

    def x(self, p, hexs):
        self.lines.append("x %s %s" % (p, hexs))

    def l(self, p, target):
        """symlink at p to the tree path target, written relative"""
        self.lines.append("l %s %s" % (p, os.path.relpath(target, os.path.dirname(p))))

    def dev(self, p, uevent="", subsystem=None, driver=None, **attrs):
        self.d(p)
        self.f(p + "/uevent", uevent)
        if subsystem:
            self.l(p + "/subsystem", subsystem)
        if driver:
            self.l(p + "/driver", driver)
        for k, v in attrs.items():
            self.f(p + "/" + k, v)

    def cls(self, subsystem, p):
        """class device p (…/<subsystem>/<name>) and its /sys/class link"""
        name = os.path.basename(p)
        self.dev(p, "", "class/" + subsystem)
        self.l("class/%s/%s" % (subsystem, name), p)

    def pci(self, p, driver, cls="0x010700", vendor="0x1000", device="0x0097"):
        self.dev(p, "DRIVER=%s\nPCI_CLASS=%s\nPCI_SLOT_NAME=%s" % (driver, cls[2:].lstrip("0"), os.path.basename(p)),
                 "bus/pci", "bus/pci/drivers/" + driver, vendor=vendor, device=device, **{"class": cls})

    def block(self, p, name, major, minor, sectors, rot=0, ro=0, removable=0, lbs=512, pbs=512, dev_link=None, **attrs):
        self.dev(p, "MAJOR=%d\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=disk" % (major, minor, name), "class/block",
                 size=str(sectors), ro=str(ro), removable=str(removable), hidden="0", **attrs)
        self.f(p + "/queue/logical_block_size", str(lbs))
        self.f(p + "/queue/physical_block_size", str(pbs))
        self.f(p + "/queue/hw_sector_size", str(lbs))
        self.f(p + "/queue/rotational", str(rot))
        self.d(p + "/holders")
        if dev_link:
            self.l(p + "/device", dev_link)
        self.l("block/" + name, p)

    def part(self, disk, name, num, major, minor, start, sectors, holders=()):
        p = disk + "/" + name
        self.dev(p, "MAJOR=%d\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=%d" % (major, minor, name, num),
                 "class/block", partition=str(num), start=str(start), size=str(sectors), ro="0")
        self.d(p + "/holders")
        for h in holders:
            self.l(p + "/holders/" + h, "devices/virtual/block/" + h)
            self.l("devices/virtual/block/%s/slaves/%s" % (h, name), p)

    def virtual(self, name, major, minor, sectors, ro=0, **attrs):
        p = "devices/virtual/block/" + name
        self.block(p, name, major, minor, sectors, ro=ro, **attrs)

    def scsi_dev(self, p, vendor, model, typ="0", vpd=()):
        self.dev(p, "DEVTYPE=scsi_device\nDRIVER=sd\nMODALIAS=scsi:t-0x%02x" % int(typ), "bus/scsi",
                 "bus/scsi/drivers/" + ("sr" if typ == "5" else "sd"),
                 vendor=vendor, model=model, rev="0001", type=typ, scsi_level="7", state="running")
        for line in vpd:
            self.lines.append(line)

    def vpd(self, *args):
        out = subprocess.run(["python3", os.path.join(HERE, "mkvpd.py")] + list(args), check=True,
                             capture_output=True, text=True).stdout
        return out.splitlines()

    def write(self, name):
        with open(os.path.join(HERE, "sysfs", name), "w") as fh:
            fh.write("\n".join(self.lines) + "\n")


def host(t, p, n):
    t.dev(p, "DEVTYPE=scsi_host", "bus/scsi")
    t.dev(p + "/scsi_host/host%d" % n, "", "class/scsi_host")


def target(t, p):
    t.dev(p, "DEVTYPE=scsi_target", "bus/scsi")


def sata():
    t = Tree("""
Intel AHCI controller 0000:00:1f.2 (ahci), Debian 12 kernel layout:
sda  ata1 Samsung SSD 860 EVO 500GB with a WWN, VPD 0x89 (IDENTIFY) present
sdb  ata2 WDC WD10EFRX-68FYTN0, no WWN, no VPD 0x89 (names from the VPD 0x83
     SAT designator), partitions sdb1, sdb2 (sdb2 is a member of md127)
sr0  ata3 DVD drive (SCSI type 5): left out; md127, loop0, ram0: left out
""")
    t.d("devices/pci0000:00")
    t.f("devices/pci0000:00/uevent", "")
    ctl = "devices/pci0000:00/0000:00:1f.2"
    t.pci(ctl, "ahci", "0x010601", "0x8086", "0x1d02")
    disks = [
        (1, "sda", 0, "Samsung SSD 860 EVO 500GB", "S3Z9NB0K123456A", "5002538e40a1b2c3", 0, True),
        (2, "sdb", 16, "WDC WD10EFRX-68FYTN0", "     WD-WCC4J1234567", None, 1, False),
    ]
    for port, name, minor, model, serial, wwn, rot, pg89 in disks:
        h = port - 1
        ata = "%s/ata%d" % (ctl, port)
        t.dev(ata)
        t.cls("ata_port", ata + "/ata_port/ata%d" % port)
        t.f(ata + "/ata_port/ata%d/port_no" % port, str(port))
        t.dev(ata + "/link%d" % port)
        host(t, ata + "/host%d" % h, h)
        tg = ata + "/host%d/target%d:0:0" % (h, h)
        target(t, tg)
        sd = tg + "/%d:0:0:0" % h
        vpd = t.vpd("ata", sd, model, serial, *([wwn] if wwn else []))
        if not pg89:
            vpd = [l for l in vpd if "/vpd_pg89 " not in l]
        t.scsi_dev(sd, "ATA     ", model[:16].ljust(16), vpd=vpd)
        bp = sd + "/block/" + name
        t.block(bp, name, 8, minor, 976773168 if name == "sda" else 1953525168, rot=rot, pbs=512 if rot == 0 else 4096,
                dev_link=sd)
    sdb = ctl + "/ata2/host1/target1:0:0/1:0:0:0/block/sdb"
    t.part(sdb, "sdb1", 1, 8, 17, 2048, 2097152)
    t.part(sdb, "sdb2", 2, 8, 18, 2099200, 1951424512, holders=["md127"])
    # DVD drive on ata3
    ata = ctl + "/ata3"
    t.dev(ata)
    t.cls("ata_port", ata + "/ata_port/ata3")
    t.f(ata + "/ata_port/ata3/port_no", "3")
    host(t, ata + "/host2", 2)
    target(t, ata + "/host2/target2:0:0")
    sd = ata + "/host2/target2:0:0/2:0:0:0"
    t.scsi_dev(sd, "HL-DT-ST", "DVD+-RW GHB0N   ", typ="5")
    t.block(sd + "/block/sr0", "sr0", 11, 0, 2097151, removable=1, lbs=2048, pbs=2048, dev_link=sd)
    t.virtual("md127", 9, 127, 1951162368)
    t.virtual("loop0", 7, 0, 0)
    t.virtual("ram0", 1, 0, 131072)
    t.write("server-sata.tree")


def sas():
    t = Tree("""
Broadcom SAS3008 HBA 0000:03:00.0 (mpt3sas) behind root port 0000:00:01.0:
sda  direct attached SAS disk, narrow port (num_phys 1), phy 0
sdb  SATA disk behind an expander (SAT in the HBA: vendor "ATA"), phy 7
sdc  dual-ported SAS disk on a wide port (num_phys 2), partition sdc1 held by dm-0
sdd  read-only SAS disk: left out; dm-0: left out
""")
    t.d("devices/pci0000:00")
    t.f("devices/pci0000:00/uevent", "")
    t.pci("devices/pci0000:00/0000:00:01.0", "pcieport", "0x060400", "0x8086", "0x2030")
    hba = "devices/pci0000:00/0000:00:01.0/0000:03:00.0"
    t.pci(hba, "mpt3sas", "0x010700", "0x1000", "0x0097")
    h = hba + "/host0"
    host(t, h, 0)

    def port(p, phys):
        t.dev(p)
        t.cls("sas_port", p + "/sas_port/" + os.path.basename(p))
        t.f(p + "/sas_port/%s/num_phys" % os.path.basename(p), str(phys))

    def end_device(p, addr, phy):
        t.dev(p)
        t.cls("sas_device", p + "/sas_device/" + os.path.basename(p))
        c = p + "/sas_device/" + os.path.basename(p)
        t.f(c + "/sas_address", addr)
        t.f(c + "/phy_identifier", str(phy))
        t.f(c + "/device_type", "end device")

    # sda: narrow port straight from the HBA
    port(h + "/port-0:0", 1)
    end_device(h + "/port-0:0/end_device-0:0", "0x5000c500a1b2c3d5", 0)
    tg = h + "/port-0:0/end_device-0:0/target0:0:0"
    target(t, tg)
    t.scsi_dev(tg + "/0:0:0:0", "SEAGATE ", "ST4000NM0025    ",
               vpd=t.vpd("scsi", tg + "/0:0:0:0", "ZC11ABCD0000C7301234", "5000c500a1b2c3d7", "5000c500a1b2c3d5"))
    t.block(tg + "/0:0:0:0/block/sda", "sda", 8, 0, 7814037168, rot=1, pbs=4096, dev_link=tg + "/0:0:0:0")
    # sdb: expander on a wide link, the disk on its phy 7
    port(h + "/port-0:1", 4)
    exp = h + "/port-0:1/expander-0:1"
    t.dev(exp)
    t.cls("sas_device", exp + "/sas_device/expander-0:1")
    t.f(exp + "/sas_device/expander-0:1/sas_address", "0x500304801f3c2a7f")
    t.f(exp + "/sas_device/expander-0:1/device_type", "edge expander")
    port(exp + "/port-0:1:0", 1)
    end_device(exp + "/port-0:1:0/end_device-0:1:0", "0x500304801f3c2a47", 7)
    tg = exp + "/port-0:1:0/end_device-0:1:0/target0:0:1"
    target(t, tg)
    t.scsi_dev(tg + "/0:0:1:0", "ATA     ", "ST8000NM0055-1RM",
               vpd=t.vpd("ata", tg + "/0:0:1:0", "ST8000NM0055-1RM112", "ZA1ABCDE", "5000c500b1c2d3e4"))
    t.block(tg + "/0:0:1:0/block/sdb", "sdb", 8, 16, 15628053168, rot=1, pbs=4096, dev_link=tg + "/0:0:1:0")
    # sdc: wide port to a dual-ported disk
    port(h + "/port-0:2", 2)
    end_device(h + "/port-0:2/end_device-0:2", "0x5000cca0a1b2c3d5", 1)
    tg = h + "/port-0:2/end_device-0:2/target0:0:2"
    target(t, tg)
    t.scsi_dev(tg + "/0:0:2:0", "HGST    ", "HUH721010AL5200 ",
               vpd=t.vpd("scsi", tg + "/0:0:2:0", "7JH0ABCD", "5000cca0a1b2c3d4", "5000cca0a1b2c3d5"))
    sdc = tg + "/0:0:2:0/block/sdc"
    t.block(sdc, "sdc", 8, 32, 19532873728, rot=1, lbs=4096, pbs=4096, dev_link=tg + "/0:0:2:0")
    t.part(sdc, "sdc1", 1, 8, 33, 2048, 19532869632, holders=["dm-0"])
    # sdd: read-only
    port(h + "/port-0:3", 1)
    end_device(h + "/port-0:3/end_device-0:3", "0x5000c500a1b2c3e9", 3)
    tg = h + "/port-0:3/end_device-0:3/target0:0:3"
    target(t, tg)
    t.scsi_dev(tg + "/0:0:3:0", "SEAGATE ", "ST4000NM0025    ",
               vpd=t.vpd("scsi", tg + "/0:0:3:0", "ZC11ABCE0000C7305678", "5000c500a1b2c3eb", "5000c500a1b2c3e9"))
    t.block(tg + "/0:0:3:0/block/sdd", "sdd", 8, 48, 7814037168, rot=1, ro=1, dev_link=tg + "/0:0:3:0")
    t.virtual("dm-0", 253, 0, 19532869632)
    t.write("server-sas.tree")


def nvme():
    t = Tree("""
Two NVMe drives, Debian 12 kernel with native NVMe multipath (the default):
nvme0n1  Samsung 970 EVO Plus on 0000:3d:00.0; the namespace head lives under
         devices/virtual/nvme-subsystem/nvme-subsys0, its path device
         nvme0c0n1 is hidden: left out. wwid from the EUI-64.
nvme1n1  Intel P4510 on 0000:3e:00.0, laid out without multipath (the
         namespace below the controller), wwid from the NGUID, one partition.
zram0: left out.
""")
    t.d("devices/pci0000:00")
    t.f("devices/pci0000:00/uevent", "")
    # nvme0: multipath layout
    t.pci("devices/pci0000:00/0000:00:1d.0", "pcieport", "0x060400", "0x8086", "0xa330")
    pci0 = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0"
    t.pci(pci0, "nvme", "0x010802", "0x144d", "0xa808")
    sub = "devices/virtual/nvme-subsystem/nvme-subsys0"
    t.dev(sub, "NVME_TRTYPE=pcie", "class/nvme-subsystem",
          serial="S4EWNX0R123456      ", model="Samsung SSD 970 EVO Plus 1TB            ",
          firmware_rev="2B2QEXM7", subsysnqn="nqn.2014.08.org.nvmexpress:144d144dS4EWNX0R123456      Samsung SSD 970 EVO Plus 1TB")
    t.l("class/nvme-subsystem/nvme-subsys0", sub)
    c0 = pci0 + "/nvme/nvme0"
    t.dev(c0, "MAJOR=241\nMINOR=0\nDEVNAME=nvme0\nNVME_TRTYPE=pcie", "class/nvme",
          serial="S4EWNX0R123456      ", model="Samsung SSD 970 EVO Plus 1TB            ",
          firmware_rev="2B2QEXM7", address="0000:3d:00.0", transport="pcie", cntlid="4")
    t.l(c0 + "/device", pci0)
    t.l("class/nvme/nvme0", c0)
    t.block(sub + "/nvme0n1", "nvme0n1", 259, 0, 1953525168, wwid="eui.0025388b91b4a1c2", nsid="1")
    t.block(c0 + "/nvme0c0n1", "nvme0c0n1", 0, 0, 1953525168, wwid="eui.0025388b91b4a1c2", nsid="1", dev_link=c0)
    t.f(c0 + "/nvme0c0n1/hidden", "1")
    # nvme1: no multipath
    t.pci("devices/pci0000:00/0000:00:1c.0", "pcieport", "0x060400", "0x8086", "0xa338")
    pci1 = "devices/pci0000:00/0000:00:1c.0/0000:3e:00.0"
    t.pci(pci1, "nvme", "0x010802", "0x8086", "0x0a54")
    c1 = pci1 + "/nvme/nvme1"
    t.dev(c1, "MAJOR=241\nMINOR=1\nDEVNAME=nvme1\nNVME_TRTYPE=pcie", "class/nvme",
          serial="PHLJ912345671P0FGN  ", model="INTEL SSDPE2KX010T8                     ",
          firmware_rev="VDV10131", address="0000:3e:00.0", transport="pcie")
    t.l(c1 + "/device", pci1)
    t.l("class/nvme/nvme1", c1)
    t.block(c1 + "/nvme1n1", "nvme1n1", 259, 1, 1953525168, wwid="eui.01000000000000005cd2e4e1ab4b5051", nsid="1",
            dev_link=c1)
    t.part(c1 + "/nvme1n1", "nvme1n1p1", 1, 259, 2, 2048, 1953523087)
    t.virtual("zram0", 252, 0, 16777216)
    t.write("server-nvme.tree")


def vmscsi():
    t = Tree("""
QEMU guest with a virtio-scsi controller 0000:00:04.0 (virtio2, host2):
sda  scsi-hd serial=disk-a1 (vendor-specific VPD 0x83 designator)
sdb  scsi-hd serial=disk-b2 wwn=0x5000c50015ea71ad (NAA designator)
""")
    t.d("devices/pci0000:00")
    t.f("devices/pci0000:00/uevent", "")
    pci = "devices/pci0000:00/0000:00:04.0"
    t.pci(pci, "virtio-pci", "0x010000", "0x1af4", "0x1004")
    v = pci + "/virtio2"
    t.dev(v, "DRIVER=virtio_scsi\nMODALIAS=virtio:d00000008v00001AF4", "bus/virtio", "bus/virtio/drivers/virtio_scsi",
          vendor="0x1af4", device="0x0008")
    host(t, v + "/host2", 2)
    for tgt, name, minor, devid, wwn in ((0, "sda", 0, "disk-a1", None), (1, "sdb", 16, "disk-b2", "5000c50015ea71ad")):
        tg = v + "/host2/target2:0:%d" % tgt
        target(t, tg)
        sd = tg + "/2:0:%d:0" % tgt
        t.scsi_dev(sd, "QEMU    ", "QEMU HARDDISK   ", vpd=t.vpd("qemu", sd, devid, *([wwn] if wwn else [])))
        t.block(sd + "/block/" + name, name, 8, minor, 20971520, rot=1, dev_link=sd)
    t.write("vm-scsi.tree")


def system():
    t = Tree("""
Not disks: NICs, DMI and CPU topology of a two-socket server.
eno1  Intel X710 (i40e) with link at 10 Gb/s; eno2 its second port, no link
bond0 a bond (virtual: no device link): left out; lo: left out
""")
    t.d("devices/pci0000:00")
    t.f("devices/pci0000:00/uevent", "")
    for fn, name, mac, carrier, speed, state in ((0, "eno1", "3c:fd:fe:a1:b2:c0", "1", "10000", "up"),
                                                 (1, "eno2", "3c:fd:fe:a1:b2:c1", "0", None, "down")):
        pci = "devices/pci0000:00/0000:00:02.0/0000:18:00.%d" % fn
        if fn == 0:
            t.pci("devices/pci0000:00/0000:00:02.0", "pcieport", "0x060400", "0x8086", "0x2030")
        t.pci(pci, "i40e", "0x020000", "0x8086", "0x1572")
        n = pci + "/net/" + name
        attrs = dict(address=mac, carrier=carrier, operstate=state, mtu="1500", type="1")
        if speed:
            attrs["speed"] = speed
        t.dev(n, "INTERFACE=%s\nIFINDEX=%d" % (name, fn + 2), "class/net", **attrs)
        t.l(n + "/device", pci)
        t.l("class/net/" + name, n)
    for name, mac in (("bond0", "3c:fd:fe:a1:b2:c0"), ("lo", "00:00:00:00:00:00")):
        n = "devices/virtual/net/" + name
        t.dev(n, "INTERFACE=" + name, "class/net", address=mac, carrier="1", operstate="up")
        t.l("class/net/" + name, n)
    dmi = "devices/virtual/dmi/id"
    t.dev(dmi, "MODALIAS=dmi:bvnDellInc.", "class/dmi", sys_vendor="Dell Inc.", product_name="PowerEdge R640",
          product_serial="7XK9Q03", product_uuid="4c4c4544-0058-4b10-8039-b7c04f513033", board_vendor="Dell Inc.")
    t.l("class/dmi/id", dmi)
    for cpu in range(4):
        c = "devices/system/cpu/cpu%d" % cpu
        t.f(c + "/topology/physical_package_id", str(cpu // 2))
        t.f(c + "/topology/core_id", str(cpu % 2))
    t.f("devices/system/cpu/online", "0-3")
    t.d("block")
    t.write("system.tree")


def usb():
    t = Tree("""
A USB stick on the xHCI controller 0000:00:14.0 (usb-storage): removable,
listed, with a by-path name but no by-id (usb_id reads USB descriptors).
""")
    t.d("devices/pci0000:00")
    t.f("devices/pci0000:00/uevent", "")
    pci = "devices/pci0000:00/0000:00:14.0"
    t.pci(pci, "xhci_hcd", "0x0c0330", "0x8086", "0xa36d")
    t.dev(pci + "/usb2", "DEVTYPE=usb_device\nDRIVER=usb", "bus/usb", "bus/usb/drivers/usb", busnum="2", devnum="1")
    t.dev(pci + "/usb2/2-1", "DEVTYPE=usb_device\nDRIVER=usb", "bus/usb", "bus/usb/drivers/usb",
          busnum="2", devnum="2", manufacturer="SanDisk", product="Ultra", serial="4C530001230517115123")
    intf = pci + "/usb2/2-1/2-1:1.0"
    t.dev(intf, "DEVTYPE=usb_interface\nDRIVER=usb-storage", "bus/usb", "bus/usb/drivers/usb-storage",
          bInterfaceClass="08")
    host(t, intf + "/host6", 6)
    tg = intf + "/host6/target6:0:0"
    target(t, tg)
    sd = tg + "/6:0:0:0"
    t.scsi_dev(sd, "SanDisk ", "Ultra           ")
    t.block(sd + "/block/sde", "sde", 8, 64, 60063744, removable=1, dev_link=sd)
    t.write("usb-stick.tree")


sata()
sas()
usb()
system()
nvme()
vmscsi()
