#!/usr/bin/env bash
# Build the AWS Lambda deployment package: a zip of the code (main.py, app.py,
# lambda_handler.py, functions/, shared/) and the pinned requirements, built for the
# Lambda platform (manylinux wheels), whatever machine runs this.
#
#   scripts/package-lambda.sh [--python 3.12] [--arch x86_64|arm64] [--output build/lambda.zip] [--source-only]
#
# Handler: lambda_handler.handler. --source-only leaves the dependencies out (for a
# Lambda layer that holds them, or to inspect what is shipped).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON_VERSION="3.12"
ARCH="x86_64"
OUTPUT="build/lambda.zip"
SOURCE_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PYTHON_VERSION="${2:?--python needs a version}"; shift 2 ;;
    --arch) ARCH="${2:?--arch needs x86_64 or arm64}"; shift 2 ;;
    --output) OUTPUT="${2:?--output needs a path}"; shift 2 ;;
    --source-only) SOURCE_ONLY=1; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-lambda.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ARCH" in
  x86_64) PLATFORM="manylinux2014_x86_64" ;;
  arm64) PLATFORM="manylinux2014_aarch64" ;;
  *) echo "package-lambda.sh: --arch must be x86_64 or arm64" >&2; exit 2 ;;
esac
[[ "$PYTHON_VERSION" =~ ^3\.[0-9]+$ ]] || { echo "package-lambda.sh: --python must look like 3.12" >&2; exit 2; }

PY="python3"
[[ -x .venv/bin/python ]] && PY=".venv/bin/python"

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

if (( ! SOURCE_ONLY )); then
  echo "==> installing requirements.txt for Python $PYTHON_VERSION on $PLATFORM"
  "$PY" -m pip install --disable-pip-version-check --quiet \
    --requirement requirements.txt --target "$staging" \
    --platform "$PLATFORM" --python-version "$PYTHON_VERSION" --implementation cp --only-binary=:all:
fi

echo "==> adding the code"
cp main.py app.py lambda_handler.py "$staging/"
cp -R openapi "$staging/"   # the one-process app serves /openapi.yaml and /openapi.json
for package in functions shared; do
  mkdir -p "$staging/$package"
  # Only the Python sources and the SQL migrations (shared/store/migrations): no caches, no local state.
  (cd "$package" && find . \( -name '*.py' -o -name '*.sql' \) -not -path '*/__pycache__/*' -print0 | xargs -0 -I{} cp --parents {} "$staging/$package/")
done

mkdir -p "$(dirname "$OUTPUT")"
"$PY" - "$staging" "$OUTPUT" <<'PY'
import os, sys, zipfile
root, output = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            path = os.path.join(directory, name)
            archive.write(path, os.path.relpath(path, root))
PY
echo "==> $OUTPUT ($(du -h "$OUTPUT" | cut -f1)); Lambda handler: lambda_handler.handler"
