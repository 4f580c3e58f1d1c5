#!/usr/bin/env bash
# The benchmarks (bench/README.md): cold start, webhook bursts, bulk pacing, CPU per message and
# memory, each against a baseline measured in the same run; prints a table of ratios.
# Usage: ./bench.sh [--quick] [--only cold,burst,bulk,cpu,memory,pumping] [--no-firestore] [--write] [--strict]
#   --write stores the report in bench/RESULTS.md. The full profile takes about 10 minutes.
#   --only pumping runs the SMS-pumping simulation (bench/pumping.py): what an attacker gets past the budget.
# Runs in its own virtualenv, bench/.runs/venv: exactly what a deployment installs (requirements.txt)
# plus the official vonage SDK for the baselines (requirements-bench.txt), so development-only
# packages cannot change what is measured. All traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"

venv="bench/.runs/venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.deps"
want=$(cat requirements.txt requirements-bench.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing requirements-bench.txt into $venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r requirements-bench.txt
  echo "$want" > "$stamp"
fi
exec "$venv/bin/python" -m bench "$@"
