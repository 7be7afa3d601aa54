package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"syscall"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/imagewriter"
	"github.com/imprint-dev/imprint/internal/devguard"
	"github.com/imprint-dev/imprint/partition"
)

// reasonOf classifies a step's failure into the API's machine-readable
// reasons (api.Reason*), from the error chain the step returned.
func reasonOf(err error) string {
	var ee *exec.ExitError
	var pe *os.PathError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, devguard.ErrNotPlanned), errors.Is(err, partition.ErrNotPlanned):
		return api.ReasonNotPlanned
	case errors.Is(err, partition.ErrInUse), errors.Is(err, syscall.EBUSY):
		return api.ReasonDeviceInUse
	case errors.Is(err, configdrive.ErrDeviceTooSmall):
		return api.ReasonConfigdriveTooSmall
	case errors.Is(err, imagewriter.ErrVerify):
		return api.ReasonVerifyFailed
	case errors.Is(err, imagewriter.ErrSource):
		return api.ReasonImageUnreachable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return api.ReasonCancelled
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENODEV):
		return api.ReasonDeviceMissing
	case errors.Is(err, syscall.EIO), errors.Is(err, syscall.ENOSPC):
		return api.ReasonIO
	case errors.As(err, &ee), isCommandError(err):
		return api.ReasonCommandFailed
	case errors.As(err, &pe):
		return api.ReasonIO
	}
	return api.ReasonInternal
}

// isCommandError: the exec adapters' errors name the argv and the exit
// status (sys.ExecError, bootloader's), and unwrap to *exec.ExitError when
// the program ran; one that has an ExitCode method counts too.
func isCommandError(err error) bool {
	var ec interface{ ExitCode() int }
	return errors.As(err, &ec)
}
