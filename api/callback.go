package api

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/imprint-dev/imprint/inventory"
)

// The agent → controller callbacks: the agent POSTs JSON to
// <controller>/discovery, <controller>/progress and <controller>/result with
// its node's bearer token. These types are the contract both sides compile
// against.

// Discovery is the body of the discovery callback.
type Discovery struct {
	// NodeID is what the node calls itself (the DMI UUID, else the host
	// name): recorded by the controller, never trusted as identity (boards
	// share placeholder UUIDs); the bearer token says which node it is.
	NodeID string `json:"node_id"`
	// Listen is the agent's API address as configured (":9999"); Addresses
	// are the node's unicast IPs, so the controller can build the URL.
	Listen    string   `json:"listen"`
	Scheme    string   `json:"scheme"` // http or https
	Addresses []string `json:"addresses,omitempty"`
	// TLSFingerprint is the SHA-256 fingerprint of the agent's certificate
	// (colon-separated hex, see Fingerprint), for the controller to pin.
	TLSFingerprint string               `json:"tls_fingerprint,omitempty"`
	Version        string               `json:"version,omitempty"`
	Inventory      *inventory.Inventory `json:"inventory"`
}

// Callback is the body of the progress and result callbacks.
type Callback struct {
	NodeID string `json:"node_id"`
	Status Status `json:"status"`
}

// Fingerprint is the SHA-256 of a DER certificate as colon-separated
// upper-case hex (what `openssl x509 -fingerprint -sha256` prints): the
// agent announces its certificate's in Discovery.TLSFingerprint, the
// controller and `imprint ctl` pin it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
