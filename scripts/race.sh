#!/usr/bin/env bash
# race.sh (`make race`): the unit tests of every package that starts
# goroutines or serves HTTP (read from the source, so a new one is covered)
# under the race detector. -race needs cgo, so CGO_ENABLED=1 here only; the
# binary itself stays static (the Makefile exports CGO_ENABLED=0).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gcc >/dev/null || {
	echo "race: gcc not found; -race needs cgo (install the Debian package gcc; scripts/apt-packages.txt)" >&2
	exit 1
}
mapfile -t pkgs < <(git grep -l -E '^\s*(defer )?go (func|[A-Za-z_][A-Za-z0-9_.]*\()|net/http/httptest|http\.Server\{' -- '*.go' |
	xargs -n1 dirname | sort -u | sed 's|^|./|')
echo "race: ${pkgs[*]}" >&2
# TestAgentHostileDocumentsRSS measures the agent's peak RSS in a child
# process; under the race detector that child is the instrumented test
# binary, whose shadow memory is several times the real footprint. The unit
# tier runs it on the real binary.
CGO_ENABLED=1 exec go test -race -count=1 -p 1 -timeout 15m -skip '^TestAgentHostileDocumentsRSS$' "${pkgs[@]}"
