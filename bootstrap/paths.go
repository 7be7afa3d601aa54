package bootstrap

import "github.com/imprint-dev/imprint/bootstrap/nodearchive"

// Default paths of the per-node files (see bootstrap/nodearchive) and of
// the network document ramdisk-init applied, which the agent's configdrive
// gives the installed OS.
const (
	DefaultNetworkDoc     = "/" + nodearchive.NetworkFile
	DefaultCABundle       = "/" + nodearchive.CABundleFile
	DefaultAppliedNetwork = "/run/imprint/network_data.json"
	// DefaultInitDir holds the init.d scripts `imprint build-ramdisk`
	// elements add; ramdisk-init runs them before the agent starts.
	DefaultInitDir = "/etc/imprint/init.d"
)
