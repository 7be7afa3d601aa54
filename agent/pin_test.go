package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/imprint-dev/imprint/api"
)

// pinnedClient trusts exactly the certificate with this fingerprint.
func pinnedClient(fingerprint string) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || api.Fingerprint(raw[0]) != fingerprint {
				return fmt.Errorf("certificate fingerprint mismatch")
			}
			return nil
		},
	}}}
}
