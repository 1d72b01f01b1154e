#!/bin/sh
# The packages and the image, checked as their users' tools check them
# (make package-test, run by make test):
#
#   sh examples/package/test.sh DEB RPM IMAGE_ARCHIVE VERSION
#
# 1. lintian on the .deb: no error and no warning; the ones that stay are
#    overridden in examples/package/lintian-overrides, each with a reason.
# 2. The files of both packages, from dpkg-deb -c and rpm -qpl, are the
#    list below, no more and no less; rpm -qpi reads the .rpm; the modes,
#    owners, conffile and maintainer scripts are the ones meant.
# 3. The .deb installed for real by dpkg into a throwaway root (dpkg --root
#    with --force-script-chrootless: the maintainer scripts run with
#    DPKG_ROOT set, as they support, and act inside the root): the user and
#    group are made, the state dir is theirs with mode 0700, the service is
#    enabled, every file is in place. The installed binary runs --version,
#    and --recover as that user, on a state dir and disk path inside the
#    root, first with nothing to do, then removing a fill file left over.
#    The installed prerm then runs as on a host without systemd running, in
#    a mount namespace of its own where /etc/passwd, /etc/group and
#    /etc/default are the root's: its --recover, with those settings, must
#    remove a leftover fill file and the fill dir. Installing again changes
#    nothing and keeps the changed conffile; removal keeps it and the
#    state; purge removes both and keeps the user. Not run: starting and
#    stopping the service, which needs systemd running (the scripts guard
#    every systemctl call for it, and for DPKG_ROOT).
# 4. The image (podman image save, an OCI archive): one layer, holding
#    /usr/bin/cro-exporter and nothing else, run as user 65532; that binary
#    runs --version.
#
# Nothing outside a temporary directory changes.
set -eu

deb=$1 rpm=$2 image=$3 version=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The service's user must reach the root's binary and state dir.
chmod 0755 "$tmp"

fail() {
	echo "package-test: FAIL: $*" >&2
	exit 1
}
ok() { echo "package-test: ok: $*"; }

# --- the list: every file (and the state dir) each package must hold ---
common='/etc/default/cro-exporter
/usr/bin/cro-exporter
/usr/lib/systemd/system/cro-exporter.service
/usr/share/bash-completion/completions/cro-exporter
/usr/share/cro-exporter/cro-exporter.json
/usr/share/cro-exporter/cro-exporter.rules.yml
/usr/share/doc/cro-exporter/changelog.gz
/usr/share/doc/cro-exporter/copyright
/usr/share/doc/cro-exporter/examples/cloud-init.yml
/usr/share/doc/cro-exporter/examples/prometheus.yml
/usr/share/doc/cro-exporter/examples/targets.yml
/usr/share/doc/cro-exporter/examples/web-config.yml
/usr/share/fish/vendor_completions.d/cro-exporter.fish
/usr/share/man/man1/cro-exporter.1.gz
/var/lib/cro-exporter'
printf '%s\n%s\n' "$common" '/usr/share/doc/cro-exporter/README.md.gz
/usr/share/lintian/overrides/cro-exporter
/usr/share/zsh/vendor-completions/_cro-exporter' | sort >"$tmp/want.deb"
printf '%s\n%s\n' "$common" '/usr/share/doc/cro-exporter/README.md
/usr/share/zsh/site-functions/_cro-exporter' | sort >"$tmp/want.rpm"

# same NAME WANT GOT: the two lists are equal, or the test fails naming
# what is missing and what is extra.
same() {
	if ! diff -u "$2" "$3" >"$tmp/diff"; then
		cat "$tmp/diff" >&2
		fail "$1: the files differ from the list (- missing, + not listed)"
	fi
}

# --- 1. lintian ---
# One run shows everything, overrides too; errors and warnings fail.
lintian --fail-on none --pedantic --display-info --show-overrides "$deb" >"$tmp/lintian" 2>&1 || {
	cat "$tmp/lintian" >&2
	fail "lintian $deb did not run"
}
grep '^[EWIPO]:' "$tmp/lintian" || true
if grep -q '^[EW]:' "$tmp/lintian"; then
	fail "lintian $deb: errors or warnings (above)"
fi
ok "lintian: no error or warning; $(grep -c '^[IP]:' "$tmp/lintian" || true) info or pedantic tags, $(grep -c '^O:' "$tmp/lintian" || true) overridden"

# --- 2. the packages' contents ---
dpkg-deb -c "$deb" >"$tmp/deb-files"
# Everything but directories, and the one directory of ours.
awk '$1 !~ /^d/ || $6 == "./var/lib/cro-exporter/" { sub(/^\./, "", $6); sub(/\/$/, "", $6); print $6 }' "$tmp/deb-files" |
	sort >"$tmp/got.deb"
same "$deb" "$tmp/want.deb" "$tmp/got.deb"
grep -q '^drwx------ root/root .* \./var/lib/cro-exporter/$' "$tmp/deb-files" ||
	fail "the .deb's /var/lib/cro-exporter is not drwx------ (the postinst gives it to the user)"
grep -q '^-rwxr-xr-x root/root .* \./usr/bin/cro-exporter$' "$tmp/deb-files" ||
	fail "the .deb's /usr/bin/cro-exporter is not -rwxr-xr-x root"
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/default/cro-exporter ] ||
	fail "the .deb's conffiles are not /etc/default/cro-exporter alone"
for s in postinst prerm postrm; do
	dpkg-deb -I "$deb" "$s" >"$tmp/$s" || fail "the .deb has no $s"
	cmp -s "$tmp/$s" "examples/package/deb/$s" || fail "the .deb's $s is not examples/package/deb/$s"
done
# The copyright names cro-exporter's own license before those linked in.
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/doc/cro-exporter/copyright >"$tmp/copyright"
sed -n '/^License: /{p;q}' "$tmp/copyright" | grep -qx 'License: Apache-2.0' ||
	fail "the .deb's copyright does not name cro-exporter's license, Apache-2.0, first"
ok "dpkg-deb: $(wc -l <"$tmp/got.deb") files as listed, modes, conffile, maintainer scripts, copyright"

# rpm keeps a database even for queries, in ~/.rpmdb on Debian: a temporary
# one instead.
rpmq() { rpm --dbpath "$tmp/rpmdb" "$@"; }
rpmq -qpi "$rpm" >"$tmp/rpm-info" 2>&1 || { cat "$tmp/rpm-info" >&2; fail "rpm -qpi $rpm"; }
grep -q '^Name *: cro-exporter$' "$tmp/rpm-info" || fail "rpm -qpi: the name is not cro-exporter"
rpmq -qpl "$rpm" | sort >"$tmp/got.rpm"
same "$rpm" "$tmp/want.rpm" "$tmp/got.rpm"
rpmq -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" >"$tmp/rpm-files"
grep -qx 'drwx------ cro-exporter:cro-exporter  /var/lib/cro-exporter' "$tmp/rpm-files" ||
	fail "the .rpm's /var/lib/cro-exporter is not drwx------ cro-exporter's"
grep -qx -- '-rw-r--r-- root:root cn /etc/default/cro-exporter' "$tmp/rpm-files" ||
	fail "the .rpm's /etc/default/cro-exporter is not %config(noreplace)"
rpmq -qp --scripts "$rpm" >"$tmp/rpm-scripts"
for s in preinstall postinstall preuninstall postuninstall; do
	grep -q "^$s scriptlet" "$tmp/rpm-scripts" || fail "the .rpm has no $s scriptlet"
done
ok "rpm -qpi, rpm -qpl: $(wc -l <"$tmp/got.rpm") files as listed, modes, owners, config, scriptlets"

# --- 3. the .deb installed into a throwaway root ---
if [ "$(id -u)" != 0 ]; then
	# dpkg, chown, setpriv and unshare need root even inside a temp dir.
	echo "package-test: SKIPPED: installing the .deb into a throwaway root needs root" >&2
else
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/etc"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$root/etc/shadow"
echo 'root:*::' >"$root/etc/gshadow"
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
# Its dependencies (passwd) are the host's: the scripts run outside the root.
dpkg_root() {
	dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null "$@" >"$tmp/dpkg" 2>&1 || {
		cat "$tmp/dpkg" >&2
		fail "dpkg --root $*"
	}
}
dpkg_root -i "$deb"

while read -r f; do
	[ -e "$root$f" ] || fail "installed: $f is missing"
done <"$tmp/want.deb"
uid=$(awk -F: '$1 == "cro-exporter" { print $3 }' "$root/etc/passwd")
gid=$(awk -F: '$1 == "cro-exporter" { print $3 }' "$root/etc/group")
[ -n "$uid" ] && [ -n "$gid" ] || fail "installed: no user or group cro-exporter"
[ "$uid" -lt 1000 ] || fail "installed: cro-exporter's uid $uid is not a system uid"
grep -q '^cro-exporter:x:[0-9]*:[0-9]*:[^:]*:/var/lib/cro-exporter:/usr/sbin/nologin$' "$root/etc/passwd" ||
	fail "installed: cro-exporter's home or shell: $(grep '^cro-exporter:' "$root/etc/passwd")"
[ "$(stat -c '%a %u %g' "$root/var/lib/cro-exporter")" = "700 $uid $gid" ] ||
	fail "installed: /var/lib/cro-exporter is $(stat -c '%a %u %g' "$root/var/lib/cro-exporter"), not 700 $uid $gid"
[ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/cro-exporter.service")" = /usr/lib/systemd/system/cro-exporter.service ] ||
	fail "installed: the service is not enabled"
grep -qx 'ExecStart=/usr/bin/cro-exporter' "$root/usr/lib/systemd/system/cro-exporter.service" ||
	fail "installed: the unit's ExecStart= is not /usr/bin/cro-exporter"
grep -qx 'ExecStopPost=-/usr/bin/cro-exporter --recover' "$root/usr/lib/systemd/system/cro-exporter.service" ||
	fail "installed: the unit's ExecStopPost= does not run /usr/bin/cro-exporter --recover"
if grep -v '^#' "$root/etc/default/cro-exporter" | grep -q .; then
	fail "installed: /etc/default/cro-exporter sets something; every line should be a comment"
fi
ok "dpkg -i into $root: every file, user cro-exporter ($uid:$gid), state dir 0700 theirs, service enabled"

got=$("$root/usr/bin/cro-exporter" --version)
[ "$got" = "$version" ] || fail "installed: --version says '$got', not '$version'"
ok "installed binary: --version = $got"

# --recover as the service's user, everything inside the root.
as_user() { setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"; }
state=$root/var/lib/cro-exporter
as_user "$root/usr/bin/cro-exporter" --recover --state.dir="$state" --disk.path="$root" >"$tmp/recover" 2>&1 || {
	cat "$tmp/recover" >&2
	fail "installed: --recover with nothing to do"
}
grep -q '^Nothing to recover' "$tmp/recover" || { cat "$tmp/recover" >&2; fail "installed: --recover found something to do"; }
# A fill file left by a daemon that died, on a disk of the user's.
disk=$root/srv/data
fill=$disk/.cro-fill
install -d -o "$uid" -g "$gid" -m 0755 "$disk"
install -d -o "$uid" -g "$gid" -m 0700 "$fill"
printf '%s' "$state" >"$fill/.cro-exporter"
head -c 65536 /dev/zero >"$fill/fill-000001"
chown "$uid:$gid" "$fill/.cro-exporter" "$fill/fill-000001"
chmod 0600 "$fill/.cro-exporter" "$fill/fill-000001"
as_user "$root/usr/bin/cro-exporter" --recover --state.dir="$state" --disk.path="$disk" >"$tmp/recover" 2>&1 || {
	cat "$tmp/recover" >&2
	fail "installed: --recover of a leftover fill file"
}
grep -q "^Removed 1 fill file from $fill" "$tmp/recover" || { cat "$tmp/recover" >&2; fail "installed: --recover did not report the fill file"; }
[ ! -e "$fill" ] || fail "installed: --recover left $fill"
ok "installed binary: --recover as cro-exporter, nothing to do, then a leftover fill file removed"

# The installed prerm's removal, as on a host where systemd does not run:
# in a mount namespace of its own, where /etc/passwd, /etc/group and
# /etc/default are the root's, its settings point into the root, and the
# fill dir sits in a directory of root's, as /.cro-fill does in /.
disk=$root/srv/rootfs
fill=$disk/.cro-fill
install -d -m 0755 "$disk"
install -d -o "$uid" -g "$gid" -m 0700 "$fill"
printf '%s' "$state" >"$fill/.cro-exporter"
head -c 65536 /dev/zero >"$fill/fill-000001"
chown "$uid:$gid" "$fill/.cro-exporter" "$fill/fill-000001"
chmod 0600 "$fill/.cro-exporter" "$fill/fill-000001"
printf 'CRO_STATE_DIR=%s\nCRO_DISK_PATH=%s\n' "$state" "$disk" >>"$root/etc/default/cro-exporter"
unshare --mount sh -c '
	mount --make-rprivate / &&
	mount --bind "$1/etc/passwd" /etc/passwd &&
	mount --bind "$1/etc/group" /etc/group &&
	mount --bind "$1/etc/default" /etc/default &&
	PATH="$1/usr/bin:$PATH" sh "$1/var/lib/dpkg/info/cro-exporter.prerm" remove' sh "$root" >"$tmp/prerm" 2>&1 || {
	cat "$tmp/prerm" >&2
	fail "installed: the prerm failed"
}
if ! grep -q "^Removed 1 fill file from $fill" "$tmp/prerm" || ! grep -q "fill dir $fill is empty and left in place" "$tmp/prerm" ||
	grep -q 'did not finish cleanly' "$tmp/prerm" || [ -e "$fill" ]; then
	cat "$tmp/prerm" >&2
	fail "installed: the prerm's --recover did not remove the leftover fill"
fi
ok "installed prerm (remove, no systemd): --recover as cro-exporter with /etc/default's settings removed the fill file and dir"

dpkg_root -i "$deb"
[ "$(grep -c '^cro-exporter:' "$root/etc/passwd")" = 1 ] || fail "reinstalled: the user is made twice"
[ "$(stat -c '%a %u %g' "$state")" = "700 $uid $gid" ] || fail "reinstalled: the state dir changed"
grep -q "^CRO_STATE_DIR=$state\$" "$root/etc/default/cro-exporter" || fail "reinstalled: the changed conffile was replaced"
echo '# the admin was here' >>"$root/etc/default/cro-exporter"
touch "$state/averages.json"
dpkg_root -r cro-exporter
[ ! -e "$root/usr/bin/cro-exporter" ] || fail "removed: the binary is still there"
grep -q 'the admin was here' "$root/etc/default/cro-exporter" || fail "removed: the conffile is gone or replaced"
[ -e "$state/averages.json" ] || fail "removed: the state is gone"
dpkg_root -P cro-exporter
[ ! -e "$root/etc/default/cro-exporter" ] || fail "purged: the conffile is still there"
[ ! -e "$state" ] || fail "purged: the state dir is still there"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/cro-exporter.service" ] || fail "purged: the service is still enabled"
[ ! -e "$root/etc/systemd/system/cro-exporter.service" ] || fail "purged: the service is still masked"
grep -q '^cro-exporter:' "$root/etc/passwd" || fail "purged: the user is gone (it should stay)"
ok "dpkg -i again changes nothing; -r keeps the conffile and the state; -P removes both, keeps the user"

# A state dir that is a symbolic link is refused, and what it points at is
# left as it was.
install -d -m 0755 "$root/srv/elsewhere"
ln -s ../../srv/elsewhere "$state"
if dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null -i "$deb" >"$tmp/dpkg" 2>&1; then
	fail "a state dir that is a symbolic link: dpkg -i succeeded"
fi
grep -q 'is not a directory (a symbolic link?)' "$tmp/dpkg" || { cat "$tmp/dpkg" >&2; fail "a state dir that is a symbolic link: the postinst did not say why it failed"; }
[ "$(stat -c '%a %u %g' "$root/srv/elsewhere")" = "755 0 0" ] ||
	fail "a state dir that is a symbolic link: its target became $(stat -c '%a %u %g' "$root/srv/elsewhere")"
ok "dpkg -i with /var/lib/cro-exporter a symbolic link: refused by the postinst, its target unchanged"
fi

# --- 4. the image ---
img=$tmp/image
mkdir "$img"
tar -xf "$image" -C "$img"
layers=0
for blob in "$img"/blobs/sha256/*; do
	# A layer is a tar (compressed or not); the index, manifest and config
	# are JSON.
	tar -tvf "$blob" >"$tmp/layer" 2>/dev/null || continue
	layers=$((layers + 1))
	files=$(awk '$1 !~ /^d/ { print $NF }' "$tmp/layer")
	[ "$files" = usr/bin/cro-exporter ] || fail "image: the layer holds $(echo $files), not usr/bin/cro-exporter alone"
	mkdir "$tmp/layer.d"
	tar -xf "$blob" -C "$tmp/layer.d" usr/bin/cro-exporter
done
[ "$layers" = 1 ] || fail "image: $layers layers, not 1"
grep -qs '"User":"65532:65532"' "$img"/blobs/sha256/* || fail "image: the config's user is not 65532:65532"
grep -qs '"Entrypoint":\["/usr/bin/cro-exporter"\]' "$img"/blobs/sha256/* || fail "image: the entrypoint is not /usr/bin/cro-exporter"
got=$("$tmp/layer.d/usr/bin/cro-exporter" --version)
[ "$got" = "$version" ] || fail "image: --version says '$got', not '$version'"
ok "image: one layer, /usr/bin/cro-exporter alone, user 65532, --version = $got ($(du -k "$tmp/layer.d/usr/bin/cro-exporter" | cut -f1) KiB)"
