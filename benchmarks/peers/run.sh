#!/usr/bin/env bash
# Run one peer runner with its own venv's python; arguments after the name go to the runner.
#
#   bash benchmarks/peers/run.sh graphst PATH.h5ad --seed 0 [--k K] [--truth ground_truth]
#
# names: graphst stagate banksy squidpy baseline (baseline runs in the squidpy venv).
# Where that venv is missing (setup failed or was not run) it still prints the one JSON line,
# with "error", and exits 1, so a harness records the failure instead of losing it.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${1:?usage: run.sh NAME PATH.h5ad --seed S [--k K] [--truth COL]}
shift
case $name in
    graphst | stagate | banksy | squidpy) venv=$name ;;
    baseline) venv=squidpy ;;
    *)
        echo "unknown peer '$name' (graphst stagate banksy squidpy baseline)" >&2
        exit 2
        ;;
esac
py="$HERE/.venvs/$venv/bin/python"
if [[ ! -x $py ]]; then
    python3 - "$name" "$venv" "$@" <<'EOF'
import json, pathlib, sys

name, venv, args = sys.argv[1], sys.argv[2], sys.argv[3:]
seed = args[args.index("--seed") + 1] if "--seed" in args else "0"
print(json.dumps({
    "method": name, "variant": None, "data": pathlib.Path(args[0]).name if args else None,
    "seed": int(seed), "k": None, "ari": None, "nmi": None, "wall_s": None, "peak_rss_gb": None,
    "n_obs": None, "peer_version": None,
    "error": f"venv benchmarks/peers/.venvs/{venv} missing: run `bash benchmarks/peers/setup.sh {venv}`",
}))
EOF
    exit 1
fi
exec "$py" "$HERE/run_$name.py" "$@"
