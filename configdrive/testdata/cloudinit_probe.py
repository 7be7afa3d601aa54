"""Load an extracted configdrive with cloud-init's own datasource code.

usage: cloudinit_probe.py nocloud|configdrive SEED_DIR IMAGE WORK_DIR

Runs the installed cloud-init's NoCloud or ConfigDrive datasource on SEED_DIR
(the image's files, extracted), its device detection (blkid through
util.find_devs_with) on IMAGE, its user-data processor on the user-data, its
cloud-config schema validator on the cloud-config part, and its network
state parser plus eni and netplan renderers on the network config. Prints
one JSON object; exits non-zero when cloud-init does not accept the seed.
"""
import json
import os
import sys

from cloudinit import helpers, util
from cloudinit import user_data as ud_mod
from cloudinit.config import schema as schema_mod
from cloudinit.net import eni, netplan, network_state

kind, seed, image, work = sys.argv[1:5]

paths = helpers.Paths({
    "cloud_dir": os.path.join(work, "cloud"),
    "run_dir": os.path.join(work, "run"),
    "templates_dir": os.path.join(work, "templates"),
})
out = {"kind": kind}

# Device detection, exactly the criteria the datasources query.
def devs(criteria):
    try:
        return util.find_devs_with(criteria, path=image, no_cache=True)
    except Exception as e:  # blkid exits 2 when nothing matches
        return []

if kind == "nocloud":
    from cloudinit.sources import DataSourceNoCloud as mod
    fs = devs("TYPE=vfat") + devs("TYPE=iso9660")
    labels = devs("LABEL=CIDATA") + devs("LABEL=cidata") + devs("LABEL_FATBOOT=cidata")
    out["detected"] = sorted(set(fs) & set(labels))
    ds = mod.DataSourceNoCloud(sys_cfg={"datasource": {"NoCloud": {"fs_label": None}}}, distro=None, paths=paths)
    ds.seed_dirs = [seed]
else:
    from cloudinit.sources import DataSourceConfigDrive as mod
    fs = devs("TYPE=vfat") + devs("TYPE=iso9660")
    labels = devs("LABEL=config-2") + devs("LABEL=CONFIG-2")
    out["detected"] = sorted(set(labels))  # ConfigDrive takes any fs with the label
    out["detected_fstype"] = sorted(set(fs))
    out["read_config_drive_keys"] = sorted(mod.read_config_drive(seed).keys())
    ds = mod.DataSourceConfigDrive(sys_cfg={}, distro=None, paths=paths)
    ds.seed_dir = seed

if not ds._get_data():
    print(json.dumps({"error": "datasource did not claim the seed"}))
    sys.exit(3)

out["instance_id"] = ds.get_instance_id()
hn = ds.get_hostname()
out["hostname"] = getattr(hn, "hostname", hn)
out["local_hostname"] = ds.metadata.get("local-hostname")
out["public_keys"] = ds.get_public_ssh_keys()

# User data through cloud-init's processor (MIME walking, part handlers).
msg = ud_mod.UserDataProcessor(paths).process(ds.get_userdata_raw())
parts = []
cloud_config = None
for part in msg.walk():
    if part.is_multipart():
        continue
    ctype = part.get_content_type()
    payload = part.get_payload(decode=True).decode()
    parts.append({"type": ctype, "filename": part.get_filename(), "head": payload.splitlines()[0] if payload else ""})
    if ctype == "text/cloud-config":
        cloud_config = payload
out["parts"] = parts

if cloud_config is not None:
    with open(os.path.join(work, "cloud-config.yaml"), "w") as f:
        f.write(cloud_config)
    cfg = util.load_yaml(cloud_config)
    out["cloud_config"] = cfg
    # strict: schema errors raise SchemaValidationError
    schema_mod.validate_cloudconfig_schema(cfg, schema_mod.get_schema(), strict=True, log_deprecations=True)
    out["schema_valid"] = True

    # How cc_users_groups / cc_ssh see the accounts on a Debian target.
    from cloudinit import distros
    from cloudinit.distros import ug_util
    debian = distros.fetch("debian")("debian", {}, paths)
    import copy
    users, _groups = ug_util.normalize_users_groups(copy.deepcopy(cfg), debian)  # it consumes its input
    out["normalized_users"] = users
    out["default_user"] = ug_util.extract_default(users)[0]

    # cc_write_files, rooted in WORK/root instead of /.
    from cloudinit.config import cc_write_files
    root = os.path.join(work, "root")
    files = [dict(f, path=root + f["path"]) for f in copy.deepcopy(cfg.get("write_files", []))]
    cc_write_files.write_files("write_files", files, "root:root")
    written = {}
    for f in cfg.get("write_files", []):
        st = os.stat(root + f["path"])
        with open(root + f["path"]) as fh:
            written[f["path"]] = {"content": fh.read(), "mode": oct(st.st_mode & 0o7777)}
    out["written_files"] = written

# Network config through cloud-init's parser and two renderers.
netcfg = ds.network_config
out["network_config"] = netcfg
ns = network_state.parse_net_config_data(netcfg)
target = os.path.join(work, "target")
eni.Renderer({"eni_path": "etc/network/interfaces.d/50-cloud-init", "netrules_path": None}).render_network_state(ns, target=target)
with open(os.path.join(target, "etc/network/interfaces.d/50-cloud-init")) as f:
    out["eni"] = f.read()
np = netplan.Renderer({"netplan_path": "etc/netplan/50-cloud-init.yaml", "postcmds": False})
np.render_network_state(ns, target=target)
with open(os.path.join(target, "etc/netplan/50-cloud-init.yaml")) as f:
    out["netplan"] = f.read()

print(json.dumps(out, default=str))
