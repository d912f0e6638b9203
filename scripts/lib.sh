# scripts/lib.sh -- shared by scripts/demo.sh, scripts/test.sh and bench/.
#
# Installs what the project needs, builds it, and runs throwaway PostgreSQL
# clusters on a private port and socket directory.  PostgreSQL refuses to
# run as root, so when these scripts run as root the server runs as the
# "postgres" OS user; otherwise it runs as the calling user.  A cluster is
# stopped through its own postmaster.pid (pg_ctl stop -D), never by name.
#
# Source it; do not run it.

DD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DD_PG_MAJOR=15
DD_SYSTEM_BINDIR=/usr/lib/postgresql/$DD_PG_MAJOR/bin
DD_PACKAGES=(
    make gcc
    "postgresql-$DD_PG_MAJOR"
    "postgresql-server-dev-$DD_PG_MAJOR"
    "postgresql-$DD_PG_MAJOR-pgtap"
    libtap-parser-sourcehandler-pgtap-perl    # pg_prove
)

dd_log() { printf '\n==> %s\n' "$*"; }
dd_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# dd_sudo CMD...: run CMD as root (directly when we are root).
dd_sudo() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# dd_as_pg CMD...: run CMD as the OS user that owns the clusters.
dd_as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# dd_install_packages: install the Debian packages that are missing.
dd_install_packages() {
    local missing=() p
    for p in "${DD_PACKAGES[@]}"; do
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

# dd_build: compile the extension (warnings are errors).
dd_build() {
    dd_log "building dd_clipper $(make -s -C "$DD_ROOT" print-version)"
    make -s -C "$DD_ROOT" -j2 >/dev/null || dd_die "build failed"
}

# dd_temp_install DIR: a private copy of the PostgreSQL server with this
# checkout's build of dd_clipper installed into it (like PostgreSQL's own
# "make check").  Tests run against exactly what this checkout built,
# whatever is installed system-wide, and two checkouts can test at once.
# Echoes the bin directory.
dd_temp_install() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir/usr/lib/postgresql" "$dir/usr/share/postgresql"
    cp -a "/usr/lib/postgresql/$DD_PG_MAJOR" "$dir/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$DD_PG_MAJOR" "$dir/usr/share/postgresql/"
    rm -f "$dir/usr/lib/postgresql/$DD_PG_MAJOR/lib/dd_clipper.so" \
          "$dir/usr/share/postgresql/$DD_PG_MAJOR/extension/dd_clipper"*
    make -s -C "$DD_ROOT" install DESTDIR="$dir" >/dev/null \
        || dd_die "make install into $dir failed"
    echo "$dir/usr/lib/postgresql/$DD_PG_MAJOR/bin"
}

# dd_cluster_start BINDIR DATADIR PORT [postgres -c options...]
# initdb a new cluster in DATADIR and start it on PORT, listening only on a
# private unix socket directory.  Exports PGHOST, PGPORT, PGUSER and
# DD_BINDIR, DD_DATADIR for the callers' clients.
dd_cluster_start() {
    local bindir=$1 datadir=$2 port=$3
    shift 3
    local sockdir=/tmp/dd_clipper.$port
    local opts="-p $port -k $sockdir -c listen_addresses='' $*"

    dd_cluster_stop_dir "$datadir"
    rm -rf "$datadir" "$sockdir"
    mkdir -p "$datadir" "$sockdir"
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
    local datadir=$1 bindir=${DD_BINDIR:-$DD_SYSTEM_BINDIR}
    [ -f "$datadir/postmaster.pid" ] || return 0
    dd_as_pg "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1 || true
}

# dd_cluster_stop: stop the cluster dd_cluster_start started.
dd_cluster_stop() {
    [ -n "${DD_DATADIR:-}" ] && dd_cluster_stop_dir "$DD_DATADIR"
}
