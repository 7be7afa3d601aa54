package configdrive

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// quoted is a string YAML always double-quotes: MACs such as 08:00:27:10:20:30
// are base-60 integers to a YAML 1.1 reader (cloud-init's PyYAML).
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Tag: "!!str", Value: string(q)}, nil
}

func quoteAll(s []string) []quoted {
	out := make([]quoted, len(s))
	for i, v := range s {
		out[i] = quoted(v)
	}
	return out
}

// Network config version 1: a physical interface matched by MAC (cloud-init
// renames it to the provisioned name) with a static subnet. Version 1 is
// rendered by every renderer (ifupdown's eni included) and avoids the v2
// "to: default" route that cloud-init 22.4's eni renderer rejects.
type netV1 struct {
	Version int          `yaml:"version"`
	Config  []netV1Entry `yaml:"config"`
}

type netV1Entry struct {
	Type       string        `yaml:"type"`
	Name       string        `yaml:"name,omitempty"`
	MACAddress quoted        `yaml:"mac_address,omitempty"`
	Subnets    []netV1Subnet `yaml:"subnets,omitempty"`
	Address    []quoted      `yaml:"address,omitempty"`
	Search     []quoted      `yaml:"search,omitempty"`
}

type netV1Subnet struct {
	Type           string   `yaml:"type"`
	Address        quoted   `yaml:"address"`
	Netmask        quoted   `yaml:"netmask"`
	Gateway        quoted   `yaml:"gateway,omitempty"`
	DNSNameservers []quoted `yaml:"dns_nameservers,omitempty"`
	DNSSearch      []quoted `yaml:"dns_search,omitempty"`
}

func networkConfigV1(n *node) ([]byte, error) {
	cfg := netV1{Version: 1, Config: []netV1Entry{{
		Type:       "physical",
		Name:       n.admin.name,
		MACAddress: quoted(n.admin.mac),
		Subnets: []netV1Subnet{{
			Type:           "static",
			Address:        quoted(n.admin.ip),
			Netmask:        quoted(n.admin.netmask),
			Gateway:        quoted(n.gateway),
			DNSNameservers: quoteAll(n.nameServers),
			DNSSearch:      quoteAll(n.searchDomains),
		}},
	}}}
	if len(n.nameServers) > 0 || len(n.searchDomains) > 0 {
		cfg.Config = append(cfg.Config, netV1Entry{Type: "nameserver", Address: quoteAll(n.nameServers), Search: quoteAll(n.searchDomains)})
	}
	out, err := marshalYAML(cfg)
	if err != nil {
		return nil, fmt.Errorf("network-config: %w", err)
	}
	return out, nil
}

// OpenStack network_data.json, as cloud-init's ConfigDrive datasource
// converts it (links, networks, services). "name" pins the interface name.
type netData struct {
	Links    []netLink    `json:"links"`
	Networks []netNetwork `json:"networks"`
	Services []netService `json:"services"`
}

type netLink struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	MAC  string `json:"ethernet_mac_address"`
}

type netNetwork struct {
	ID             string     `json:"id"`
	Type           string     `json:"type"`
	Link           string     `json:"link"`
	IPAddress      string     `json:"ip_address"`
	Netmask        string     `json:"netmask"`
	Gateway        string     `json:"gateway,omitempty"`
	Routes         []netRoute `json:"routes"`
	DNSNameservers []string   `json:"dns_nameservers,omitempty"`
	DNSSearch      []string   `json:"dns_search,omitempty"`
	NetworkID      string     `json:"network_id"`
}

type netRoute struct {
	Network string `json:"network"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
}

type netService struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

func networkDataJSON(n *node) ([]byte, error) {
	nd := netData{
		Links: []netLink{{ID: n.admin.name, Name: n.admin.name, Type: "phy", MAC: n.admin.mac}},
		Networks: []netNetwork{{
			ID: "admin", Type: "ipv4", Link: n.admin.name, NetworkID: "admin",
			IPAddress: n.admin.ip, Netmask: n.admin.netmask, Routes: []netRoute{},
			DNSNameservers: n.nameServers, DNSSearch: n.searchDomains,
		}},
		Services: []netService{},
	}
	// The gateway goes on the network (cloud-init copies it to the subnet):
	// a 0.0.0.0/0 route would render for ifupdown as "post-up route add
	// default gw", and Debian 12 has no route(8) without net-tools.
	nd.Networks[0].Gateway = n.gateway
	for _, s := range n.nameServers {
		nd.Services = append(nd.Services, netService{Type: "dns", Address: s})
	}
	out, err := json.MarshalIndent(nd, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("network_data.json: %w", err)
	}
	return append(out, '\n'), nil
}
