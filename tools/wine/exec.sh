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
export WINEPREFIX="$prefix" WINEDEBUG="${WINEDEBUG:--all}"
wine64=${WINE64:-/usr/lib/wine/wine64}
# The first Wine program of a session (the wineserver and its services,
# winedevice.exe and the like, which stay some seconds after the last
# program ends, waiting for another) starts those services, and they
# inherit its stdout: go test would wait seconds for them to let it go.
# So the session starts here, detached from stdout; later programs, this
# one too, join it.
"$wine64" wineboot </dev/null >/dev/null 2>&1 || true
exec "$wine64" "$@"
