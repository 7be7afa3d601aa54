package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/imprint-dev/imprint/configdrive"
	"github.com/imprint-dev/imprint/provision"
)

// The configdrive step takes ks_meta.phone_home_url from the document, over
// the writer's default, and it reaches the cloud-config.
func TestConfigdriveWriterPhoneHome(t *testing.T) {
	b, err := os.ReadFile("testdata/provision_fuel90_ubuntu_1disk.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, doc, dflt, want string
	}{
		{"none", "", "", ""},
		{"writer default", "", "http://10.0.2.2:1/default", "http://10.0.2.2:1/default"},
		{"document", "http://10.0.2.2:8080/ph/node-1", "", "http://10.0.2.2:8080/ph/node-1"},
		{"document wins", "http://10.0.2.2:8080/ph/node-1", "http://10.0.2.2:1/default", "http://10.0.2.2:8080/ph/node-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := provision.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			doc.KsMeta.PhoneHomeURL = tt.doc
			if err := doc.Validate(); err != nil {
				t.Fatal(err)
			}
			c := ConfigdriveWriter{Options: configdrive.Options{PhoneHomeURL: tt.dflt}}
			o := c.options(doc)
			if o.PhoneHomeURL != tt.want {
				t.Fatalf("options(doc).PhoneHomeURL = %q, want %q", o.PhoneHomeURL, tt.want)
			}
			content, err := configdrive.Build(doc, o)
			if err != nil {
				t.Fatal(err)
			}
			cc := string(content.CloudConfig)
			if got := strings.Contains(cc, "phone_home:"); got != (tt.want != "") {
				t.Errorf("cloud-config has phone_home: %v, want %v:\n%s", got, tt.want != "", cc)
			}
			if tt.want != "" && !strings.Contains(cc, tt.want) {
				t.Errorf("cloud-config lacks %q:\n%s", tt.want, cc)
			}
		})
	}
}
