#!/usr/bin/env bash
# Runs the whole test suite in the project's .venv (created on first use). Extra args go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m pytest "$@"
