#!/usr/bin/env python3
"""mkvpd.py: print the VPD pages a disk shows in sysfs, as .tree 'x' lines.

    mkvpd.py ata DIR MODEL SERIAL [WWN]   libata's pages 0x80, 0x83 and 0x89
                                          (drivers/ata/libata-scsi.c
                                          ata_scsiop_inq_80/83/89) for an
                                          IDENTIFY with that model, serial
                                          (raw, padding kept) and WWN
    mkvpd.py scsi DIR SERIAL NAA [PORTNAA]  a SAS disk's 0x80 and 0x83: the
                                          LU NAA, the target port NAA and a
                                          relative port designator
    mkvpd.py qemu DIR DEVICE_ID [WWN]     QEMU scsi-hd's 0x83 (hw/scsi/scsi-disk.c)
"""
import struct
import sys


def ata_string(s, n):
    return s.ljust(n)[:n].encode()


def identify(model, serial, wwn):
    w = [0] * 256
    w[0] = 0x0040

    def put(first, s, n):
        b = ata_string(s, n)
        for i in range(0, n, 2):
            w[first + i // 2] = b[i] << 8 | b[i + 1]
    put(10, serial, 20)
    put(23, "FW01    ", 8)
    put(27, model, 40)
    if wwn:
        v = int(wwn, 16)
        w[87] = 0x4000 | 0x0100
        for i in range(4):
            w[108 + i] = (v >> (48 - 16 * i)) & 0xffff
    else:
        w[87] = 0x4000
    return struct.pack("<256H", *w)


def ata(d, model, serial, wwn=None):
    p80 = bytes([0, 0x80, 0, 20]) + ata_string(serial, 20)
    body = bytes([2, 0, 0, 20]) + ata_string(serial, 20)
    body += bytes([2, 1, 0, 68]) + b"ATA     " + ata_string(model, 40) + ata_string(serial, 20)
    if wwn:
        body += bytes([1, 3, 0, 8]) + int(wwn, 16).to_bytes(8, "big")
    p83 = bytes([0, 0x83, 0, len(body)]) + body
    p89 = bytearray(572)
    p89[1] = 0x89
    p89[2:4] = (0x238).to_bytes(2, "big")
    p89[8:16] = b"linux   "
    p89[16:32] = b"libata          "
    p89[32:36] = b"3.00"
    p89[36], p89[37], p89[38], p89[40], p89[48], p89[56] = 0x34, 0x80, 0x40, 1, 1, 0xEC
    p89[60:572] = identify(model, serial, wwn)
    for name, b in (("vpd_pg80", p80), ("vpd_pg83", p83), ("vpd_pg89", bytes(p89))):
        print("x %s/%s %s" % (d, name, b.hex()))


def scsi(d, serial, naa, port=None):
    p80 = bytes([0, 0x80, 0, len(serial)]) + serial.encode()
    body = bytes([1, 3, 0, 8]) + int(naa, 16).to_bytes(8, "big")
    if port:
        body += bytes([0x61, 0x93, 0, 8]) + int(port, 16).to_bytes(8, "big")
        body += bytes([0x61, 0x94, 0, 4, 0, 0, 0, 1])
    p83 = bytes([0, 0x83, 0, len(body)]) + body
    print("x %s/vpd_pg80 %s" % (d, p80.hex()))
    print("x %s/vpd_pg83 %s" % (d, p83.hex()))


def qemu(d, device_id, wwn=None):
    body = bytes([2, 0, 0, len(device_id)]) + device_id.encode()
    if wwn:
        body += bytes([1, 3, 0, 8]) + int(wwn, 16).to_bytes(8, "big")
    print("x %s/vpd_pg80 %s" % (d, (bytes([0, 0x80, 0, len(device_id)]) + device_id.encode()).hex()))
    print("x %s/vpd_pg83 %s" % (d, (bytes([0, 0x83, 0, len(body)]) + body).hex()))


kind, args = sys.argv[1], sys.argv[2:]
{"ata": ata, "scsi": scsi, "qemu": qemu}[kind](*args)
