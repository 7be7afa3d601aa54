//go:build !imprint_ramdisk

package main

import "context"

// hostCommands are the commands of the full build: the controller, the
// operator's clients and the image builders.
func hostCommands() []command {
	runs := map[string]func(ctx context.Context, env *cmdEnv, args []string) int{
		"controller":    runController,
		"nodes":         runNodes,
		"ctl":           runCtl,
		"pxe":           runPXE,
		"build-image":   runBuildImage,
		"build-ramdisk": runBuildRamdisk,
		"get-kernel":    runGetKernel,
	}
	out := make([]command, len(hostCommandList))
	for i, c := range hostCommandList {
		c.run = runs[c.name]
		out[i] = c
	}
	return out
}
