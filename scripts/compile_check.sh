#!/usr/bin/env bash
# scripts/compile_check.sh -- does dd_clipper compile against PostgreSQL 17?
#
#   bash scripts/compile_check.sh 17
#
# PostgreSQL 17 is packaged only for Debian 13 (trixie), whose binaries do
# not run on Debian 12, so this checks the C code without a server: it
# downloads trixie's postgresql-server-dev-17 (the server headers) and
# postgresql-client-17 (pg_config's PGXS makefiles) through a private
# sources list, unpacks them with dpkg-deb -x into DD_CACHE (nothing is
# installed), and runs the Makefile's own build (PGXS, PG_CFLAGS: -Wall
# -Wextra -Werror) on a copy of the sources, with a small stand-in for
# pg_config that names the unpacked directories.  Every file is compiled
# (make -k) and the ones that fail are named.  The .debs are fetched once
# per trixie version; DD_PG_REFRESH=1 looks for a newer one.
#
# Prints one line "PostgreSQL 17 compile check: ok|FAILED ..." last and exits
# non-zero on any failure.
set -uo pipefail

major=${1:-17}
[ "$major" = 17 ] || { echo "usage: bash scripts/compile_check.sh 17" >&2; exit 2; }

DD_PG=15 source "$(dirname "$0")/lib.sh"
cd "$DD_ROOT"

fail() {
    echo "PostgreSQL $major compile check: FAILED ($*)"
    exit 1
}

dd_apt_install make gcc ca-certificates debian-archive-keyring

# headers_dir: the unpacked packages, fetched when DD_CACHE has none.
headers_dir() {
    local have ver dir work p
    mkdir -p "$DD_CACHE" && chmod 755 "$DD_CACHE"
    exec 9>"$DD_CACHE/.lock-pg$major"
    flock 9
    have=$(ls -d "$DD_CACHE/pg$major-headers-"*/.complete 2>/dev/null | sort -V | tail -1)
    if [ -n "$have" ] && [ "${DD_PG_REFRESH:-0}" != 1 ]; then
        dirname "$have"
        return 0
    fi
    dd_log "looking up postgresql-server-dev-$major in trixie" >&2
    dd_apt trixie deb update >&2 || return 1
    ver=$(dd_apt_version trixie deb "postgresql-server-dev-$major")
    [ -n "$ver" ] || return 1
    dir=$DD_CACHE/pg$major-headers-$ver
    [ -f "$dir/.complete" ] && { echo "$dir"; return 0; }
    work=$DD_CACHE/download-$major
    rm -rf "$dir" "$work"
    mkdir -p "$dir" "$work"
    (cd "$work" && dd_apt trixie deb download \
        "postgresql-server-dev-$major=$ver" "postgresql-client-$major=$ver") >&2 || return 1
    for p in "$work"/*.deb; do
        dpkg-deb -x "$p" "$dir/root" || return 1
    done
    rm -rf "$work"
    echo "postgresql-server-dev-$major $ver" >"$dir/.complete"
    echo "$dir"
}

dir=$(headers_dir) || fail "could not fetch trixie's postgresql-server-dev-$major"
root=$dir/root
[ -f "$root/usr/include/postgresql/$major/server/postgres.h" ] || fail "no server headers in $root"

# A pg_config that answers what PGXS asks, from the unpacked tree.
cat >"$dir/pg_config" <<EOF
#!/bin/sh
case \$1 in
    --pgxs) echo $root/usr/lib/postgresql/$major/lib/pgxs/src/makefiles/pgxs.mk ;;
    --bindir) echo $root/usr/lib/postgresql/$major/bin ;;
    --sharedir) echo $root/usr/share/postgresql/$major ;;
    --sysconfdir) echo $root/etc/postgresql-common ;;
    --libdir) echo $root/usr/lib/x86_64-linux-gnu ;;
    --pkglibdir) echo $root/usr/lib/postgresql/$major/lib ;;
    --includedir) echo $root/usr/include/postgresql ;;
    --pkgincludedir) echo $root/usr/include/postgresql ;;
    --includedir-server) echo $root/usr/include/postgresql/$major/server ;;
    --mandir) echo $root/usr/share/postgresql/$major/man ;;
    --docdir) echo $root/usr/share/doc/postgresql-doc-$major ;;
    --localedir) echo $root/usr/share/locale ;;
    --version) echo "PostgreSQL $(grep -o "PG_VERSION \"[^\"]*\"" "$root/usr/include/postgresql/$major/server/pg_config.h" | cut -d'"' -f2)" ;;
    *) echo "pg_config stand-in: \$1 is not known" >&2; exit 1 ;;
esac
EOF
chmod 755 "$dir/pg_config"

# Build a copy of the sources only: this checkout's objects, built for
# another version, must neither be reused nor replaced.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
cp -a Makefile dd_clipper.control dd_clipper.c "$work/"
cp -a src/*.c src/*.h "$work/src/"
mkdir -p "$DD_ROOT/tmp_check"
log=$DD_ROOT/tmp_check/compile_check_$major.log
dd_log "compiling against $("$dir/pg_config" --version) headers ($dir)"
make -C "$work" -k -j2 PG_CONFIG="$dir/pg_config" with_llvm=no >"$log" 2>&1
rc=$?
cat "$log"

files=(dd_clipper.c src/*.c)
bad=()
for f in "${files[@]}"; do
    [ -f "$work/${f%.c}.o" ] || bad+=("$f")
done
if [ "$rc" -ne 0 ] || [ ${#bad[@]} -gt 0 ]; then
    fail "${#bad[@]} of ${#files[@]} files did not compile: ${bad[*]:-none, the link failed}; log: tmp_check/compile_check_$major.log"
fi
echo "PostgreSQL $major compile check: ok (${#files[@]} files and the module link, -Wall -Wextra -Werror, $("$dir/pg_config" --version))"
