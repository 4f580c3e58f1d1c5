# Sourced by test.sh and local.sh: create or reuse .venv and install the pinned
# requirements file given as $1, only when it (or the lock) changed since the last install.
# constraints.txt (written by scripts/lock.sh) pins every transitive dependency, so a fresh
# clone installs the same tree as CI did: `-c` constrains versions without adding packages.
req="${1:-requirements.txt}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  python3 -m venv .venv
fi
PY="$(pwd)/.venv/bin/python"
stamp=".venv/.deps-$(basename "$req" .txt)"
# Files pulled in with -r count too (requirements-docs.txt through requirements-dev.txt).
want=$(cat requirements.txt "$req" requirements-docs.txt constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing $req"
  "$PY" -m pip install --disable-pip-version-check -q -r "$req" -c constraints.txt
  echo "$want" > "$stamp"
fi
export PY
