package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/imprint-dev/imprint/prepare"
)

// kernelCmdline is /proc/cmdline ("" where it cannot be read), for the
// settings the CLI commands read from it (imprint.destructive).
func kernelCmdline() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return string(b)
}

// problemList renders a refused document's problems one per line,
// indented; any other error as it is.
func problemList(err error) string {
	var pe *prepare.Error
	if !errors.As(err, &pe) {
		return "  " + err.Error() + "\n"
	}
	var b strings.Builder
	for _, p := range pe.Problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	for _, p := range pe.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", p)
	}
	return b.String()
}
