#!/usr/bin/env bash
# Runs the whole test suite in the project's .venv (created on first use). Extra args go to pytest.
#   scripts/test.sh --fuzz [SECONDS]   instead: fuzz the image/DICOM readers for SECONDS (default 60) with
#                                      atheris (tests/fuzz/), corpus in .fuzz_corpus/; not part of CI's run
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if [[ "${1:-}" == "--fuzz" ]]; then
  seconds="${2:-60}"
  corpus="$ROOT/.fuzz_corpus"
  [[ -d "$corpus" ]] || python tests/fuzz/seed_corpus.py "$corpus"
  mkdir -p "$ROOT/.fuzz_findings"
  exec python tests/fuzz/fuzz_readers.py "$corpus" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
    -artifact_prefix="$ROOT/.fuzz_findings/"
fi
exec python -m pytest "$@"
