# A throwaway PostgreSQL server. Sourced by scripts/test-services.sh.
# Exports POSTGRES_TEST_URL (a DATABASE_URL-style URL); tests marked `postgres` need it.
#
# Installs Debian's `postgresql` package when no server binaries are found, `initdb`s a cluster
# in a temporary directory (UTF-8, C locale: byte order of strings, as Firestore compares them),
# starts it on a free 127.0.0.1 port with its socket in that directory, and deletes it all after.
# initdb and postgres refuse to run as root: as root they run as the `postgres` system user.
SERVICE_MARKER=postgres
SERVICE_TITLE="PostgreSQL server"
SERVICE_HINT="Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or run ./test.sh as root, which installs it."

_pg_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

_pg_install() {
  [ "$(id -u)" = "0" ] || { echo "PostgreSQL is not installed and this is not root: cannot apt-get install it"; return 1; }
  command -v apt-get >/dev/null 2>&1 || { echo "PostgreSQL is not installed and apt-get is missing"; return 1; }
  echo "installing PostgreSQL with apt-get (once per machine)..."
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

service_start() {
  local bindir run_as=() dir port log
  bindir=$(_pg_bindir) || { _pg_install || return 1; bindir=$(_pg_bindir) || { echo "no initdb after install"; return 1; }; }
  dir=$(mktemp -d -t vf-postgres.XXXXXX)
  if [ "$(id -u)" = "0" ]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres || return 1
    chown postgres "$dir"
    run_as=(runuser -u postgres --)
  fi
  "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { echo "initdb failed; its log:"; tail -20 "$dir/initdb.log"; rm -rf "$dir"; return 1; }
  port=$(free_port)
  log="$dir/server.log"
  # fsync off: a test cluster that is deleted after the run needs no durability, and the disk is shared.
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null 2>&1 || { echo "PostgreSQL did not start; its log:"; tail -20 "$log"; rm -rf "$dir"; return 1; }
  # Stopped, then deleted, in one cleanup so the order holds.
  track_cleanup "${run_as[*]} '$bindir/pg_ctl' -D '$dir/data' -m immediate -w -t 30 stop; rm -rf '$dir'"
  export POSTGRES_TEST_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL on 127.0.0.1:$port"
}
