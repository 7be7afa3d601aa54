#!/usr/bin/env python3
"""capture.py BLOCK... : print a sysfs fixture (.tree) of the structure behind
the named block devices, reading only: the /sys/block links, every device
directory from the disk up to /sys/devices (its small attribute files and its
subsystem/driver/device links), queue/, holders/ and the partitions.

    python3 capture.py vda loop0 zram0 > sysfs/this-vm.tree

Lines of a .tree (see fixture_test.go):
    d PATH             directory
    l PATH TARGET      symlink, target exactly as readlink gives it
    f PATH "TEXT"      text attribute: TEXT (Go-quoted) plus the newline
    x PATH HEX         binary attribute (VPD pages), bytes as hex
"""
import os
import sys

SYS = os.environ.get("SYS", "/sys")
SKIP = {"config", "rom", "remove", "rescan", "reset", "new_id", "remove_id",
        "bind", "unbind", "inflight", "stat", "diskseq", "uevent_seqnum"}
LINKS = {"subsystem", "driver", "device"}


def quote(b):
    out = []
    for c in b:
        ch = chr(c)
        if ch == "\\" or ch == '"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 32 <= c < 127:
            out.append(ch)
        else:
            out.append("\\x%02x" % c)
    return '"' + "".join(out) + '"'


def emit_file(rel, path):
    name = os.path.basename(path)
    if name in SKIP or name.startswith("resource"):
        return
    try:
        with open(path, "rb") as f:
            b = f.read(4096)
    except OSError:
        return
    if b.endswith(b"\n") and all(c in (9, 10) or 32 <= c < 127 for c in b):
        print("f %s %s" % (rel, quote(b[:-1])))
    else:
        print("x %s %s" % (rel, b.hex()))


def emit_dir(rel):
    d = os.path.join(SYS, rel)
    print("d " + rel)
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        if os.path.islink(p):
            if n in LINKS:
                print("l %s/%s %s" % (rel, n, os.readlink(p)))
        elif os.path.isfile(p):
            emit_file(rel + "/" + n, p)


for b in sys.argv[1:]:
    link = os.path.join(SYS, "block", b)
    print("l block/%s %s" % (b, os.readlink(link)))
    real = os.path.realpath(link)
    rel = os.path.relpath(real, SYS)
    emit_dir(rel)
    if os.path.isdir(os.path.join(real, "queue")):
        emit_dir(rel + "/queue")
    print("d %s/holders" % rel)
    for h in sorted(os.listdir(os.path.join(real, "holders"))):
        print("l %s/holders/%s %s" % (rel, h, os.readlink(os.path.join(real, "holders", h))))
    for n in sorted(os.listdir(real)):
        if os.path.isfile(os.path.join(real, n, "partition")):
            emit_dir(rel + "/" + n)
    p = os.path.dirname(rel)
    while p not in ("devices", ".", ""):
        if os.path.isfile(os.path.join(SYS, p, "uevent")):
            emit_dir(p)
        p = os.path.dirname(p)
