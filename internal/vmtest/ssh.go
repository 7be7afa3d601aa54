package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// NewSSHKey makes an ed25519 key pair in dir with ssh-keygen and returns
// the private key's path and the public key line.
func NewSSHKey(dir string) (priv, pub string, err error) {
	priv = filepath.Join(dir, "id_ed25519")
	argv := []string{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imprint-vmtest", "-f", priv}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("vmtest: %s: %w (output: %q)", strings.Join(argv, " "), err, out)
	}
	b, _, err := run([]string{"cat", priv + ".pub"})
	if err != nil {
		return "", "", fmt.Errorf("vmtest: read %s.pub: %w", priv, err)
	}
	return priv, strings.TrimSpace(b), nil
}

// SSH runs command as root in a DiskBoot guest through the forwarded port
// with the key and returns its standard output (see [SSH]).
func (vm *VM) SSH(ctx context.Context, key, command string) (string, error) {
	if vm.SSHAddr == "" {
		return "", fmt.Errorf("vmtest: ssh: the VM has no forwarded ssh port (not a DiskBoot)")
	}
	return SSH(ctx, vm.SSHAddr, key, command)
}

// SSH runs command as root on addr (host:port) with the key: no agent, no
// password, host key not checked (a provisioned guest's keys are new at
// every boot); it returns the command's standard output.
func SSH(ctx context.Context, addr, key, command string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	argv := []string{"ssh", "-i", key, "-p", port, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20",
		"-o", "LogLevel=ERROR", "root@" + host, command}
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), fmt.Errorf("vmtest: ssh %s %q: %w (stderr: %q)", addr, command, err, strings.TrimSpace(e.String()))
	}
	return o.String(), nil
}
