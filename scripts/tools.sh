# tools.sh: the Go tools the gates use, pinned; sourced by scripts/deps.sh
# (which installs them) and scripts/lint.sh (which runs them). A tool lives
# in build/tools/<name>-<version>/, so changing a version here installs the
# new one on the next run.
STATICCHECK_VERSION=v0.8.2
STATICCHECK=$PWD/build/tools/staticcheck-$STATICCHECK_VERSION/staticcheck

install_tools() {
	if [[ ! -x $STATICCHECK ]]; then
		echo "tools: installing staticcheck $STATICCHECK_VERSION into ${STATICCHECK%/*}" >&2
		GOBIN=${STATICCHECK%/*} CGO_ENABLED=0 go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	fi
}
