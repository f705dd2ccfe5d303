#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: makes sure .venv exists with the tested set installed, then
# activates it. Re-installs only when pyproject.toml or constraints.txt changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.bcdeploy-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[env] creating $VENV" >&2
  python3 -m venv "$VENV"
fi
pip_q() {  # quiet pip; drops the machine-level "Location ... is ignored" noise, keeps real errors
  "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  echo "[env] installing bcdeploy[all] with constraints.txt (about a minute)" >&2
  pip_q install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT[all]"
  # mmengine pulls opencv-python while the runtime uses opencv-python-headless; both own cv2/.
  # Keep exactly one (the headless one) so cv2 never depends on which was unpacked last.
  if "$VENV/bin/python" -m pip show -q opencv-python >/dev/null 2>&1; then
    pip_q uninstall -q -y opencv-python
    pip_q install -q --force-reinstall --no-deps -c "$ROOT/constraints.txt" opencv-python-headless
  fi
  echo "$want" > "$STAMP"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
