// Package agent is the provisioning agent the bootstrap ramdisk runs: its
// configuration (flags, environment, kernel command line), the HTTP server
// around package api, and the provisioning job — validate, plan, disks,
// images, configdrive, bootloader, report — run as steps through small
// consumer-declared interfaces (Disks, Images, Configdrive, Bootloader,
// Reporter), so every step can be replaced by a fake in tests.
//
// Started on a machine that is not a bootstrap node, the agent is safe: it
// changes no network, module or mount setting, and touches no disk until a
// provision request names it.
package agent
