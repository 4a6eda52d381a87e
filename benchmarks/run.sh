#!/usr/bin/env bash
# Re-run the side-by-side benchmark from scratch: the peers' environments, every method x dataset x
# seed (resumable: runs already in the CSV are skipped), then the tables and figures in docs/.
# usage: bash benchmarks/run.sh [harness.py options, e.g. --methods tsstc-sc BANKSY --seeds 0]
set -euo pipefail
cd "$(dirname "$0")/.."
# a peer that fails to install is recorded by the harness with its error, so the others still run
bash benchmarks/peers/setup.sh || echo "run.sh: some peers failed to install (see above); the harness records them" >&2
python benchmarks/harness.py "$@"
python benchmarks/report.py
