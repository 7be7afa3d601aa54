//go:build imprint_ramdisk

package main

import (
	"context"
	"fmt"
)

// hostCommands, in the ramdisk's build, keeps the full build's command
// names so that running one says where it is instead of "unknown command".
func hostCommands() []command {
	out := make([]command, len(hostCommandList))
	for i, c := range hostCommandList {
		name := c.name
		c.summary = "(not in the ramdisk's build) " + c.summary
		c.run = func(_ context.Context, env *cmdEnv, _ []string) int {
			fmt.Fprintf(env.stderr, "imprint %s: not in this build: the bootstrap ramdisk's imprint (-tags imprint_ramdisk) has the node's commands only; run it from the full build on the controller or a workstation\n", name)
			return 2
		}
		out[i] = c
	}
	return out
}
