#!/bin/sh
# exec.sh runs a Windows program, a test binary above all, under Wine in
# the private prefix prefix.sh makes, quietly, and exits with its status:
#
#   GOOS=windows go test -exec "$PWD/tools/wine/exec.sh" ./internal/host/
#
# The program sees the Linux filesystem as drive Z: (its working directory
# and any absolute path go through unchanged, /tmp/x as Z:\tmp\x) and the
# caller's environment.
set -eu
prefix=$("$(dirname "$0")/prefix.sh")
WINEPREFIX=$prefix WINEDEBUG=${WINEDEBUG:--all} exec "${WINE64:-/usr/lib/wine/wine64}" "$@"
