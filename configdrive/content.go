package configdrive

// Content is everything a configdrive carries, independent of its layout.
type Content struct {
	InstanceID      string
	Hostname        string
	MetaData        []byte // NoCloud meta-data (YAML)
	NetworkConfig   []byte // NoCloud network-config (version 1 YAML)
	MetaDataJSON    []byte // config-2 openstack/latest/meta_data.json
	NetworkDataJSON []byte // config-2 openstack/latest/network_data.json
	UserData        []byte // MIME multipart: text/cloud-boothook + text/cloud-config
	CloudConfig     []byte // the text/cloud-config part alone
	Boothook        []byte // the text/cloud-boothook part alone
	Warnings        []string
}
