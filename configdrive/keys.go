package configdrive

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

var sshKeyTypes = map[string]bool{
	"ssh-rsa": true, "ssh-dss": true, "ssh-ed25519": true, "ssh-ed448": true,
	"ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true, "ecdsa-sha2-nistp521": true,
	"sk-ecdsa-sha2-nistp256@openssh.com": true, "sk-ssh-ed25519@openssh.com": true,
	"ssh-rsa-cert-v01@openssh.com": true, "ssh-ed25519-cert-v01@openssh.com": true,
	"ecdsa-sha2-nistp256-cert-v01@openssh.com": true,
}

// checkSSHKey reports why line is not an authorized_keys public key line
// ("[options] type base64 [comment]" whose blob names the same type).
func checkSSHKey(line string) error {
	fields := strings.Fields(line)
	for i, f := range fields {
		if !sshKeyTypes[f] {
			continue
		}
		if i+1 >= len(fields) {
			return fmt.Errorf("%s key has no key data", f)
		}
		blob, err := base64.StdEncoding.DecodeString(fields[i+1])
		if err != nil {
			return fmt.Errorf("%s key data is not base64", f)
		}
		if len(blob) < 4 {
			return fmt.Errorf("%s key data is truncated", f)
		}
		l := binary.BigEndian.Uint32(blob)
		if uint64(l)+4 > uint64(len(blob)) || !bytes.Equal(blob[4:4+l], []byte(f)) {
			return fmt.Errorf("%s key data does not encode a %s key", f, f)
		}
		return nil
	}
	short := line
	if len(short) > 24 {
		short = short[:24] + "..."
	}
	return fmt.Errorf("%q is not an SSH public key (no known key type)", short)
}
