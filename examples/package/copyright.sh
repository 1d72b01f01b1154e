#!/bin/sh
# Writes the packages' /usr/share/doc/cro-exporter/copyright to stdout:
# cro-exporter's own terms (the top-level LICENSE, when the source has
# one), then the license texts of everything the static binary links in,
# the Go standard library and each Go module, found with go list, so that
# a new dependency cannot be left out. Run from the top of the source.
#
# With the argument deb, a license Debian ships in /usr/share/common-licenses
# (the Apache License 2.0 here) is referred to there instead of copied, as
# Debian policy 12.5 asks; every other text, and every NOTICE, is copied.
set -eu
GO=${GO:-go}
mode=${1:-plain}

# license FILE: prints a license file, or, for the deb, where Debian keeps it.
license() {
	if [ "$mode" = deb ] && grep -q 'Apache License' "$1" && grep -q 'Version 2.0, January 2004' "$1"; then
		echo "License: Apache-2.0"
		echo " On Debian systems, the full text of the Apache License, Version 2.0"
		echo " is in /usr/share/common-licenses/Apache-2.0."
	else
		cat "$1"
	fi
}

cat <<'HEAD'
cro-exporter
Source: https://github.com/cro-exporter/cro-exporter

Copyright: the cro-exporter authors

HEAD
if [ -f LICENSE ]; then
	license LICENSE
else
	echo "License: none stated. The source carries no LICENSE file."
fi

cat <<'DEPS'

The binary /usr/bin/cro-exporter is statically linked: it holds the Go
standard library and the Go modules below, each under its own license,
whose text follows.
DEPS

rule='------------------------------------------------------------------------'
printf '\n%s\nGo standard library (%s)\n\n' "$rule" "$($GO env GOVERSION)"
cat "$($GO env GOROOT)/LICENSE"

CGO_ENABLED=0 GOOS=linux $GO list -deps \
	-f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' \
	./cmd/cro-exporter | sort -u |
while read -r path version dir; do
	printf '\n%s\n%s %s\n' "$rule" "$path" "$version"
	found=
	for f in "$dir"/LICENSE "$dir"/LICENSE.* "$dir"/LICENCE "$dir"/COPYING "$dir"/NOTICE; do
		[ -f "$f" ] || continue
		printf '\n'
		license "$f"
		found=1
	done
	if [ -z "$found" ]; then
		echo "cro-exporter: no license file in module $path $version" >&2
		exit 1
	fi
done
