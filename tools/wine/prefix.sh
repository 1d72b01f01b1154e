#!/bin/sh
# prefix.sh makes, once, the private Wine prefix the Windows tests run in,
# and prints its path. It never touches ~/.wine: the prefix is
# $CRO_WINEPREFIX, by default cro-exporter/wine-prefix under the user's
# cache dir, kept between runs since making one takes seconds. A prefix is
# ready when its stamp names the Wine and the DLL source it was made with;
# any other is made afresh. Several callers at once (go test runs test
# binaries in parallel) wait for one to make it, under flock.
#
# Made, it holds what Debian 12's Wine 8.0 lacks for Go 1.22 and later: a
# bcryptprimitives.dll exporting ProcessPrng (processprng.c), in system32.
# Wine 8.0 has no builtin bcryptprimitives, so the native one in system32
# loads with no DLL override.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${CRO_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/cro-exporter/wine-prefix}
wine64=${WINE64:-/usr/lib/wine/wine64}

for tool in "$wine64" x86_64-w64-mingw32-gcc flock; do
	command -v "$tool" >/dev/null || {
		echo "prefix.sh: $tool is missing: run make wine-tools" >&2
		exit 1
	}
done

stamp=$(
	"$wine64" --version
	cat "$here/processprng.c" "$here/processprng.def" | sha256sum
)

mkdir -p "$(dirname "$prefix")"
exec 9>"$prefix.lock"
flock 9
if [ "$(cat "$prefix/.cro-stamp" 2>/dev/null)" != "$stamp" ]; then
	echo "prefix.sh: making the Wine prefix $prefix" >&2
	rm -rf "$prefix"
	mkdir -p "$prefix"
	# wineboot -i makes the prefix and returns when it is ready; mscoree
	# and mshtml off, so that it asks for neither Mono nor Gecko.
	WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml=' \
		"$wine64" wineboot -i >/dev/null 2>&1
	WINEPREFIX=$prefix "${WINESERVER:-/usr/lib/wine/wineserver64}" -w
	x86_64-w64-mingw32-gcc -shared -O2 -s -Wl,--no-insert-timestamp \
		-o "$prefix/drive_c/windows/system32/bcryptprimitives.dll" \
		"$here/processprng.c" "$here/processprng.def" -ladvapi32
	printf '%s\n' "$stamp" >"$prefix/.cro-stamp"
fi
printf '%s\n' "$prefix"
