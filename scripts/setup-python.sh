#!/usr/bin/env bash
# Creates (once) the Python virtual environment the interop tests use: the official
# LiteRT interpreter and numpy. Prints the venv's python path on stdout.
# QUANTFARM_VENV overrides the location (default: ~/.cache/quantfarm/venv).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${QUANTFARM_VENV:-$HOME/.cache/quantfarm/venv}"
req="$here/tests/interop/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $venv (LiteRT for interop tests)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
