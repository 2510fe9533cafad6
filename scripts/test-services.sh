#!/usr/bin/env bash
# Make sure the services the test suite needs answer, installing them from Debian
# packages when they are missing:
#   - Redis at BASTION_TEST_REDIS_URL (default redis://127.0.0.1:6379/0)
#   - PostgreSQL 15 *without* pgvector at BASTION_TEST_PG_URL
#     (default postgresql://postgres@127.0.0.1:5432/test); the tests use it to check
#     that Bastion refuses a server without pgvector.
# A no-op (well under a second) when both already answer. As root it installs and
# starts what is missing; otherwise it prints the one `sudo` command to run and exits 1.
# Non-interactive: safe under CI=true with no stdin.
set -euo pipefail

REDIS_URL="${BASTION_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
PG_URL="${BASTION_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
PG_VERSION="${BASTION_TEST_PG_VERSION:-15}"
WAIT_SECONDS="${BASTION_TEST_SERVICE_WAIT:-30}"

export DEBIAN_FRONTEND=noninteractive

IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1
MISSING_PACKAGES=()
APT_UPDATED=0

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

is_local_host() { [[ "$1" == 127.0.0.1 || "$1" == localhost || "$1" == ::1 ]]; }

# -- URL parsing ---------------------------------------------------------------

# redis://[user[:password]@]host[:port][/db]
if [[ "$REDIS_URL" =~ ^redis://([^@/]*@)?([^:/]+)(:([0-9]+))?(/.*)?$ ]]; then
    REDIS_HOST="${BASH_REMATCH[2]}"
    REDIS_PORT="${BASH_REMATCH[4]:-6379}"
else
    die "BASTION_TEST_REDIS_URL=$REDIS_URL: expected redis://host:port/db"
fi

# postgresql://user[:password]@host[:port]/database
if [[ "$PG_URL" =~ ^postgres(ql)?://(([^:@/]+)(:[^@/]*)?@)?([^:/?]+)(:([0-9]+))?/([^?]+) ]]; then
    PG_USER="${BASH_REMATCH[3]:-postgres}"
    PG_HOST="${BASH_REMATCH[5]}"
    PG_PORT="${BASH_REMATCH[7]:-5432}"
    PG_DB="${BASH_REMATCH[8]}"
else
    die "BASTION_TEST_PG_URL=$PG_URL: expected postgresql://user@host:port/database"
fi
PG_ADMIN_URL="postgresql://postgres@${PG_HOST}:${PG_PORT}/postgres"

# -- probes --------------------------------------------------------------------

redis_answers() {
    if have redis-cli; then
        [[ "$(timeout 3 redis-cli -u "$REDIS_URL" ping 2>/dev/null)" == PONG ]]
        return
    fi
    # Without redis-cli (it ships with redis-server), speak RESP over bash's /dev/tcp.
    local reply=""
    (
        exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3 || exit 1
        [[ "$reply" == "+PONG"* ]]
    ) 2>/dev/null
}

pg_answers() {
    have psql || return 1
    [[ "$(PGCONNECT_TIMEOUT=3 psql "$PG_URL" -XAtqc 'SELECT 1' 2>/dev/null)" == 1 ]]
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: poll for at most WAIT_SECONDS
    local what="$1" deadline=$((SECONDS + WAIT_SECONDS))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || die "$what did not answer within ${WAIT_SECONDS}s"
        sleep 0.2
    done
}

# -- packages ------------------------------------------------------------------

need_package() {  # need_package PACKAGE: queue it for the single apt-get install
    local pkg
    for pkg in "${MISSING_PACKAGES[@]}"; do [[ "$pkg" == "$1" ]] && return; done
    MISSING_PACKAGES+=("$1")
}

need_tool() {  # need_tool BINARY PACKAGE
    have "$1" || need_package "$2"
}

apt_update_once() {
    ((APT_UPDATED)) && return
    apt-get update -qq </dev/null
    APT_UPDATED=1
}

pg_server_package() {
    # Debian 12's default is 15; on other releases fall back to the distribution default.
    apt_update_once
    if apt-cache show "postgresql-$PG_VERSION" >/dev/null 2>&1; then
        echo "postgresql-$PG_VERSION"
    else
        echo postgresql
    fi
}

install_missing() {
    ((${#MISSING_PACKAGES[@]})) || return 0
    if ((!IS_ROOT)); then
        log "missing packages; install them, then run this again:"
        echo "sudo apt-get install -y ${MISSING_PACKAGES[*]}"
        exit 1
    fi
    apt_update_once
    log "installing ${MISSING_PACKAGES[*]}"
    apt-get install -y --no-install-recommends "${MISSING_PACKAGES[@]}" </dev/null
}

# Tools (not services) that tests call directly. Later issues add theirs here:
#   need_tool chromium chromium    (browser tests)
#   need_tool clang clang; need_tool wasm-ld lld    (WASM plugin builds)
require_test_tools() {
    :
}

# -- Redis ---------------------------------------------------------------------

REDIS_OK=0
redis_answers && REDIS_OK=1
if ((!REDIS_OK)); then
    is_local_host "$REDIS_HOST" || die "no Redis answers at $REDIS_URL and it is not local: start it there"
    need_tool redis-server redis-server
fi

# -- PostgreSQL ----------------------------------------------------------------

PG_OK=0
pg_answers && PG_OK=1
pg_bin_dir() {
    if [[ -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ]]; then
        echo "/usr/lib/postgresql/$PG_VERSION/bin"
        return
    fi
    # Debian's default `postgresql` on a release without $PG_VERSION: use what is there.
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/postgres" ]] && { echo "$dir"; return; }
    done
    return 1
}
if ((!PG_OK)); then
    is_local_host "$PG_HOST" || die "no PostgreSQL answers at $PG_URL and it is not local: start it there"
    if ! pg_bin_dir >/dev/null || ! have pg_ctlcluster || ! have psql; then
        if ((IS_ROOT)); then
            need_package "$(pg_server_package)"
        else
            need_package "postgresql-$PG_VERSION"
        fi
    fi
fi

require_test_tools
install_missing

# -- start what does not answer --------------------------------------------------

start_redis() {
    local pidfile="${TMPDIR:-/tmp}/bastion-test-redis-$REDIS_PORT.pid"
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (pid file $pidfile)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
        --pidfile "$pidfile" --logfile "" </dev/null >/dev/null
    wait_for "redis at $REDIS_URL" redis_answers
}

pg_trust_localhost() {  # pg_trust_localhost HBA_FILE: first-match rules, so prepend
    local hba="$1"
    grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba" && return 0
    log "trusting 127.0.0.1 in $hba (test cluster only)"
    local tmp
    tmp="$(mktemp)"
    {
        echo "# added by bastion scripts/test-services.sh: the test cluster trusts local TCP"
        echo "host    all    all    127.0.0.1/32    trust"
        echo "host    all    all    ::1/128         trust"
        cat "$hba"
    } >"$tmp"
    cat "$tmp" >"$hba"  # keep the file's owner and mode
    rm -f "$tmp"
}

start_postgres() {
    if ((!IS_ROOT)); then
        # Starting a cluster, editing pg_hba.conf and creating the database need root.
        log "PostgreSQL is installed but $PG_URL does not answer (server down, database missing or"
        log "authentication refused); this script fixes that as root:"
        echo "sudo env BASTION_TEST_REDIS_URL='$REDIS_URL' BASTION_TEST_PG_URL='$PG_URL' $0"
        exit 1
    fi
    local version cluster port status
    version="$(basename "$(dirname "$(pg_bin_dir)")")"
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
        log "creating cluster $version/main on port $PG_PORT"
        pg_createcluster "$version" main --port "$PG_PORT" </dev/null >/dev/null
    fi
    read -r _ cluster port status _ < <(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"')
    [[ "$port" == "$PG_PORT" ]] || die "cluster $version/$cluster listens on port $port, not $PG_PORT: set BASTION_TEST_PG_URL to match"
    pg_trust_localhost "/etc/postgresql/$version/$cluster/pg_hba.conf"
    if [[ "$status" == online* ]]; then
        pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
    else
        log "starting PostgreSQL $version/$cluster"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start </dev/null
    fi
    wait_for "PostgreSQL on 127.0.0.1:$PG_PORT" pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    if [[ "$PG_USER" != postgres ]] &&
        [[ "$(psql "$PG_ADMIN_URL" -XAtqc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]]; then
        log "creating role $PG_USER"
        psql "$PG_ADMIN_URL" -Xqc "CREATE ROLE \"$PG_USER\" LOGIN SUPERUSER"
    fi
    if [[ "$(psql "$PG_ADMIN_URL" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
        log "creating database $PG_DB"
        psql "$PG_ADMIN_URL" -Xqc "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\""
    fi
    wait_for "PostgreSQL at $PG_URL" pg_answers
}

((REDIS_OK)) || start_redis
((PG_OK)) || start_postgres
exit 0
