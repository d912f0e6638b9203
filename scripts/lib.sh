# scripts/lib.sh -- shared by scripts/demo.sh, scripts/test.sh and bench/.
#
# Installs what the project needs, builds it, and runs throwaway PostgreSQL
# clusters on a private port and socket directory.  PostgreSQL refuses to
# run as root, so when these scripts run as root the server runs as the
# "postgres" OS user; otherwise it runs as the calling user.  A cluster is
# stopped through its own postmaster.pid (pg_ctl stop -D), never by name.
#
# PostgreSQL version: DD_PG=15 (the default) uses Debian 12's packages;
# DD_PG=18 uses PostgreSQL 18 built once from Debian's source package (see
# dd_pg18_prefix) into DD_CACHE, outside the checkout.
#
# Everything the server reads or writes (the private install, data
# directories, sockets, server logs) lives under DD_RUN, a directory outside
# the checkout that the "postgres" user can reach, so a clone in a private
# (0700) folder works.  Paths under the checkout given to dd_temp_install
# and dd_cluster_start are placed at the same relative path under DD_RUN.
#
# Source it; do not run it.

DD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DD_PG=${DD_PG:-15}
DD_PG_MAJOR=$DD_PG

dd_log() { printf '\n==> %s\n' "$*"; }
dd_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# DD_CACHE: builds kept between runs (PostgreSQL 18, the PostgreSQL 17
# headers), keyed by their Debian source version.
if [ -z "${DD_CACHE:-}" ]; then
    if [ "$(id -u)" = 0 ]; then
        DD_CACHE=/var/cache/dd_clipper
    else
        DD_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dd_clipper
    fi
fi
# DD_RUN: this checkout's server-side files, one directory per checkout
# (named from a hash of its path) and PostgreSQL version.
DD_RUN=${DD_RUN:-/var/tmp/dd_clipper-$(printf '%s' "$DD_ROOT" | sha256sum | cut -c1-12)/pg$DD_PG}
export DD_PG DD_CACHE DD_RUN

# pg_prove; clang for test/fuzz (libFuzzer); pgbouncer for
# test/t/073_pgbouncer.sh, which starts its own (where systemd runs,
# installing the package also starts Debian's service on localhost:6432;
# the tests do not use it); unzip for bin/dd_convex_import, which reads
# Convex's export ZIPs with it (test/t/080_convex_import.sh builds them with
# Python's zipfile, and python3 comes with the examples' packages).
DD_PACKAGES=(make gcc libtap-parser-sourcehandler-pgtap-perl clang libclang-rt-dev pgbouncer unzip)
case $DD_PG in
    15)
        DD_SYSTEM_BINDIR=/usr/lib/postgresql/15/bin
        DD_PACKAGES+=(postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap)
        ;;
    18)
        DD_SYSTEM_BINDIR=    # set by dd_install_packages, once built
        # What the source build needs.  postgresql-common gives the
        # "postgres" OS user; the server itself comes from the build.
        DD_PACKAGES+=(postgresql-common bison flex perl zlib1g-dev xz-utils bzip2
                      ca-certificates debian-archive-keyring)
        ;;
    *)
        dd_die "DD_PG=$DD_PG: supported are 15 (Debian 12's packages) and 18 (built from source); 17 is compile-checked by scripts/compile_check.sh"
        ;;
esac

# dd_sudo CMD...: run CMD as root (directly when we are root; sudo is
# needed only when we are not).
dd_sudo() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        dd_die "needs root for: $* (run as root, or install sudo)"
    fi
}

# dd_as_pg CMD...: run CMD as the OS user that owns the clusters.
dd_as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# dd_apt_install PACKAGE...: install the Debian packages that are missing.
dd_apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    dd_log "installing packages: ${missing[*]}"
    dd_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || dd_die "apt-get update failed"
    dd_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null \
        || dd_die "apt-get install ${missing[*]} failed"
}

# dd_install_packages: install the Debian packages DD_PG needs, and for
# DD_PG=18 build PostgreSQL 18 (once; later runs reuse DD_CACHE).  Sets
# DD_SYSTEM_BINDIR and exports PG_CONFIG for every make that follows.
dd_install_packages() {
    dd_apt_install "${DD_PACKAGES[@]}"
    if [ "$DD_PG" = 18 ]; then
        local prefix
        prefix=$(dd_pg18_prefix) || exit 1
        DD_SYSTEM_BINDIR=$prefix/bin
    fi
    export PG_CONFIG=$DD_SYSTEM_BINDIR/pg_config
    [ -x "$PG_CONFIG" ] || dd_die "no $PG_CONFIG"
}

# dd_install_example_packages: what the client examples' tests need
# (test/t/060_examples.sh): Debian's psycopg 3 for /usr/bin/python3, and
# Node.js with npm unless the machine has them (a Node.js installed from
# elsewhere brings its own npm, which Debian's npm package conflicts with).
dd_install_example_packages() {
    local packages=(python3-psycopg python3-psycopg-pool)
    command -v node >/dev/null || packages+=(nodejs)
    command -v npm >/dev/null || packages+=(npm)
    dd_apt_install "${packages[@]}"
}

# dd_debian_mirror: the Debian archive the system's apt sources already
# name (deb.debian.org when none is found).
dd_debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
              /etc/apt/sources.list.d/*.sources 2>/dev/null |
          awk '/^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i }
               /^[[:space:]]*deb[[:space:]]/ {
                   for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }' |
          grep -E '/debian/?$' | head -1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# dd_apt SUITE TYPE ARGS...: apt-get with a private sources list naming
# only "TYPE <mirror> SUITE main" and private lists and caches under
# DD_CACHE/apt-SUITE-TYPE; the system's sources and state are not touched.
dd_apt() {
    local suite=$1 type=$2 dir
    shift 2
    dir=$DD_CACHE/apt-$suite-$type
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    echo "$type [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(dd_debian_mirror) $suite main" \
        >"$dir/sources.list"
    apt-get -q -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
        -o APT::Sandbox::User=root -o Acquire::Languages=none "$@"
}

# dd_apt_version SUITE TYPE PACKAGE: the newest version SUITE has of the
# (source, for TYPE deb-src) PACKAGE, from the private lists.
dd_apt_version() {
    local suite=$1 type=$2 pkg=$3 dir=$DD_CACHE/apt-$1-$2 cmd=show
    [ "$type" = deb-src ] && cmd=showsrc
    apt-cache -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
        "$cmd" "$pkg" 2>/dev/null |
        awk -v p="$pkg" '$1 == "Package:" { ok = ($2 == p) } ok && $1 == "Version:" { print $2 }' |
        sort -V | tail -1
}

# dd_pg18_prefix: echo the prefix of a PostgreSQL 18 build with pgTAP, the
# isolation tester and auto_explain (the plan tests load it), building it
# first when DD_CACHE has none.
#
# The source is Debian's source package postgresql-18 from forky (the only
# suite that has it), fetched with apt-get source through a private sources
# list; its upstream tarball is built with a minimal configure.  pgTAP for
# 18 is not packaged for Debian 12, so it is built from forky's source
# package pgtap against that prefix.  The prefix is named after both
# source versions, DD_CACHE/pg18-<postgresql-18 version>-pgtap-<version>;
# once one exists it is used without looking at the network again, unless
# DD_PG_REFRESH=1 asks for the newest sources.  A prefix counts only when
# it is marked complete for the current recipe (DD_PG18_RECIPE, raised when
# the build must hold more).  About 10 minutes on 2 cores.
DD_PG18_RECIPE=2
dd_pg18_prefix() {
    local have pgver tapver prefix work
    mkdir -p "$DD_CACHE" && chmod 755 "$DD_CACHE"
    exec 9>"$DD_CACHE/.lock-pg18"
    flock 9    # one build at a time; a second run waits and reuses it
    have=$(ls -d "$DD_CACHE"/pg18-*/.complete-$DD_PG18_RECIPE 2>/dev/null | sort -V | tail -1)
    if [ -n "$have" ] && [ "${DD_PG_REFRESH:-0}" != 1 ]; then
        dirname "$have"
        return 0
    fi
    dd_log "looking up postgresql-18 and pgtap in forky's sources" >&2
    dd_apt forky deb-src update >&2 || dd_die "apt-get update of the private forky list failed"
    pgver=$(dd_apt_version forky deb-src postgresql-18)
    tapver=$(dd_apt_version forky deb-src pgtap)
    [ -n "$pgver" ] && [ -n "$tapver" ] || dd_die "forky has no postgresql-18 or pgtap source"
    prefix=$DD_CACHE/pg18-$pgver-pgtap-$tapver
    if [ -f "$prefix/.complete-$DD_PG18_RECIPE" ]; then
        echo "$prefix"
        return 0
    fi
    dd_log "building PostgreSQL $pgver and pgTAP $tapver into $prefix (once)" >&2
    work=$DD_CACHE/build
    rm -rf "$work" "$prefix"
    mkdir -p "$work"
    (
        set -e
        cd "$work"
        dd_apt forky deb-src source --download-only "postgresql-18=$pgver" "pgtap=$tapver"
        mkdir pg tap
        tar -xf "$(ls postgresql-18_*.orig.tar.* | grep -v '\.asc$')" -C pg --strip-components=1
        tar -xf "$(ls pgtap_*.orig.tar.* | grep -v '\.asc$')" -C tap --strip-components=1
        cd pg
        ./configure --prefix="$prefix" --without-icu --without-readline \
            --without-llvm --disable-nls
        make -j2 -s
        make -s install
        make -C src/test/isolation -s install
        make -C contrib/auto_explain -s install
        cd ../tap
        make -s PG_CONFIG="$prefix/bin/pg_config"
        make -s PG_CONFIG="$prefix/bin/pg_config" install
    ) >"$DD_CACHE/build.log" 2>&1 \
        || { tail -40 "$DD_CACHE/build.log" >&2; dd_die "PostgreSQL 18 build failed (log: $DD_CACHE/build.log)"; }
    printf 'postgresql-18 %s\npgtap %s\n' "$pgver" "$tapver" >"$prefix/.complete-$DD_PG18_RECIPE"
    mv "$DD_CACHE/build.log" "$prefix/build.log"
    rm -rf "$work"
    echo "$prefix"
}

# dd_build: compile the extension (warnings are errors) with PG_CONFIG.
# Objects built for another PostgreSQL are removed first.
dd_build() {
    local stamp=$DD_ROOT/.dd_build_pg want
    want=$("$PG_CONFIG" --version; "$PG_CONFIG" --bindir)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        rm -f "$DD_ROOT"/*.o "$DD_ROOT"/src/*.o "$DD_ROOT"/*.bc "$DD_ROOT"/src/*.bc \
              "$DD_ROOT/dd_clipper.so"
        printf '%s\n' "$want" >"$stamp"
    fi
    dd_log "building dd_clipper $(make -s -C "$DD_ROOT" print-version) for $("$PG_CONFIG" --version)"
    make -s -C "$DD_ROOT" -j2 >/dev/null || dd_die "build failed"
}

# dd_server_path PATH: where the server's files for PATH go: a path inside
# the checkout maps to the same relative path under DD_RUN (which the
# "postgres" user can reach whatever the checkout's permissions); any
# other path is used as it is.
dd_server_path() {
    case $1 in
        "$DD_ROOT"/*) echo "$DD_RUN/${1#"$DD_ROOT"/}" ;;
        *) echo "$1" ;;
    esac
}

# dd_run_dir: create DD_RUN, readable by the server's OS user, refusing a
# directory someone else created in its place.
dd_run_dir() {
    local top=${DD_RUN%/*}
    (umask 022 && mkdir -p "$top") || dd_die "cannot create $top"
    { [ -O "$top" ] && [ ! -L "$top" ]; } \
        || dd_die "$top belongs to someone else; remove it or set DD_RUN"
    chmod 755 "$top"
    (umask 022 && mkdir -p "$DD_RUN") && chmod 755 "$DD_RUN"
}

# dd_temp_install DIR: a private copy of the PostgreSQL server with this
# checkout's build of dd_clipper installed into it (like PostgreSQL's own
# "make check").  Tests run against exactly what this checkout built,
# whatever is installed system-wide, and two checkouts can test at once.
# DIR goes through dd_server_path.  Echoes the bin directory.
dd_temp_install() (
    umask 022
    dd_run_dir
    local dir bindir pkglib share d
    dir=$(dd_server_path "$1")
    bindir=$("$PG_CONFIG" --bindir)
    pkglib=$("$PG_CONFIG" --pkglibdir)
    share=$("$PG_CONFIG" --sharedir)
    rm -rf "$dir"
    mkdir -p "$1"
    for d in "$bindir" "$pkglib" "$share"; do
        mkdir -p "$dir${d%/*}"
        cp -a "$d" "$dir${d%/*}/"
    done
    rm -f "$dir$pkglib/dd_clipper.so" "$dir$share/extension/dd_clipper"*
    make -s -C "$DD_ROOT" install DESTDIR="$dir" >/dev/null \
        || dd_die "make install into $dir failed"
    echo "$dir$bindir"
)

# dd_cluster_start BINDIR DATADIR PORT [postgres -c options...]
# initdb a new cluster in DATADIR (through dd_server_path) and start it on
# PORT, listening only on a private unix socket directory.  Exports PGHOST,
# PGPORT, PGUSER and DD_BINDIR, DD_DATADIR (the real data directory; the
# server log is DD_DATADIR/server.log) for the callers' clients.
dd_cluster_start() {
    local bindir=$1 datadir port=$3
    datadir=$(dd_server_path "$2")
    shift 3
    local sockdir=/tmp/dd_clipper.$port
    local opts="-p $port -k $sockdir -c listen_addresses='' $*"

    dd_run_dir
    dd_cluster_stop_dir "$datadir"
    rm -rf "$datadir" "$sockdir"
    (umask 022 && mkdir -p "$datadir" "$sockdir")
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$datadir" "$sockdir"
    fi
    chmod 700 "$datadir"
    dd_as_pg "$bindir/initdb" -D "$datadir" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$datadir.initdb.log" 2>&1 \
        || { cat "$datadir.initdb.log"; dd_die "initdb failed"; }
    dd_as_pg "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w \
        -t 60 -o "$opts" start >/dev/null \
        || { cat "$datadir/server.log"; dd_die "server did not start"; }
    export PGHOST=$sockdir PGPORT=$port PGUSER=postgres
    export DD_BINDIR=$bindir DD_DATADIR=$datadir
}

# dd_cluster_stop_dir DATADIR: stop the cluster running in DATADIR, if any.
dd_cluster_stop_dir() {
    local datadir bindir=${DD_BINDIR:-$DD_SYSTEM_BINDIR}
    datadir=$(dd_server_path "$1")
    [ -f "$datadir/postmaster.pid" ] || return 0
    dd_as_pg "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1 || true
}

# dd_cluster_stop: stop the cluster dd_cluster_start started.
dd_cluster_stop() {
    [ -n "${DD_DATADIR:-}" ] && dd_cluster_stop_dir "$DD_DATADIR"
}
