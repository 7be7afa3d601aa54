package vmtest

import (
	"testing"

	"github.com/imprint-dev/imprint/provision"
)

// The document the VM tests start from validates, and says what FuelNode asked.
func TestFuelDocValidates(t *testing.T) {
	n := FuelNode{Host: "node-7.domain.tld", MAC: "52:54:00:00:00:07", RootURI: "http://10.0.2.2:1/root.img.gz",
		BootURI: "http://10.0.2.2:1/boot.img.gz", AuthKey: "ssh-ed25519 AAAA test", PhoneHome: "http://10.0.2.2:1/ph"}
	doc, err := provision.ParseAndValidate(MarshalDoc(t, FuelDoc(t, n)))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Hostname != n.Host || doc.Name != "node-7" || doc.KsMeta.PhoneHomeURL != n.PhoneHome {
		t.Errorf("hostname %q name %q phone home %q; want %q, node-7, %q", doc.Hostname, doc.Name, doc.KsMeta.PhoneHomeURL, n.Host, n.PhoneHome)
	}
	if len(doc.KsMeta.ImageData) != 2 || doc.KsMeta.ImageData["/"].URI != n.RootURI {
		t.Errorf("image_data %+v, want / and /boot from the node", doc.KsMeta.ImageData)
	}
	d := FuelDoc(t, FuelNode{Host: "x.domain.tld"})
	if _, ok := FuelKsMeta(d)["phone_home_url"]; ok {
		t.Errorf("phone_home_url set without a PhoneHome")
	}
	if mac := d["interfaces"].(map[string]any)["eth0"].(map[string]any)["mac_address"]; mac != QEMUMAC {
		t.Errorf("default MAC %v, want %s", mac, QEMUMAC)
	}
}
