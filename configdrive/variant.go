package configdrive

import (
	"fmt"
	"strings"

	"github.com/imprint-dev/imprint/provision"
)

// variant is what fuel-agent's template choice decided: the OS family (which
// files the boothook touches) and whether accounts come from user_accounts
// (Fuel 9.0) or the older root-only scheme.
type variant struct {
	name   string // e.g. fuel_9.0_ubuntu
	family string // ubuntu or centos
	fuel9  bool
}

// knownVariants are fuel-agent's shipped template suffixes
// (<kind>_<suffix>.jinja2): provision.CloudInitTemplateVariants, each with
// what it renders.
var knownVariants = map[string]variant{
	"ubuntu":          {"ubuntu", "ubuntu", false},
	"centos":          {"centos", "centos", false},
	"fuel_6.1_ubuntu": {"fuel_6.1_ubuntu", "ubuntu", false},
	"fuel_6.1_centos": {"fuel_6.1_centos", "centos", false},
	"fuel_7.0_ubuntu": {"fuel_7.0_ubuntu", "ubuntu", false},
	"fuel_7.0_centos": {"fuel_7.0_centos", "centos", false},
	"fuel_8.0_ubuntu": {"fuel_8.0_ubuntu", "ubuntu", false},
	"fuel_9.0_ubuntu": {"fuel_9.0_ubuntu", "ubuntu", true},
}

// selectVariant resolves template kind (boothook, cloud_config, meta_data)
// the way fuel-agent did: ks_meta.cloud_init_templates[kind] when present
// (provision's rule: it must name a template fuel-agent shipped), else by
// profile. Since the config-2 drive fuel-agent ignored the meta_data
// choice; we only check it.
func selectVariant(doc *provision.Document, kind string) (variant, error) {
	if name, ok := doc.KsMeta.CloudInitTemplates[kind]; ok {
		suffix, err := provision.CheckCloudInitTemplate(kind, name)
		if err != nil {
			return variant{}, fmt.Errorf("ks_meta.cloud_init_templates.%s: %w", kind, err)
		}
		if kind == "meta_data" && suffix == "json" {
			return variant{name: "json"}, nil
		}
		v, known := knownVariants[suffix]
		if !known {
			return variant{}, fmt.Errorf("ks_meta.cloud_init_templates.%s: template %q has no renderer", kind, name)
		}
		return v, nil
	}
	family := "ubuntu"
	if p := strings.ToLower(doc.Profile); strings.HasPrefix(p, "centos") || strings.HasPrefix(p, "rhel") {
		family = "centos"
	}
	return variant{name: family, family: family, fuel9: len(doc.KsMeta.UserAccounts) > 0}, nil
}
