#!/usr/bin/env bash
# demo.sh: `make demo`, the README's main command. Until the QEMU end-to-end
# demo lands it plans the shipped example node: the Fuel 9.0 single-disk
# provision.json, validated and laid out exactly as fuel-agent would, first
# as the readable table, then as fuel-agent's PartitionScheme JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=${DEMO_DOC:-examples/provision.json}
echo "== imprint plan $doc"
bin/imprint plan "$doc"
echo
echo "== imprint plan -o json $doc (fuel-agent PartitionScheme field names)"
bin/imprint plan -o json "$doc" | head -40
echo "..."
