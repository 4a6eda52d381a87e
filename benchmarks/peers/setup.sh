#!/usr/bin/env bash
# One virtual environment per peer method, under benchmarks/peers/.venvs/<name> (git-ignored).
#
#   bash benchmarks/peers/setup.sh                  # all: graphst stagate banksy squidpy
#   bash benchmarks/peers/setup.sh graphst banksy   # only these
#
# Idempotent: an environment that exists and imports its packages is skipped; one that exists but
# does not import is repaired in place. A peer that fails to install is reported and the others
# still go ahead (exit status 1 at the end); its runner then reports the failure as a JSON line.
#
# torch is always installed FIRST and alone as torch==2.13.0, which resolves to the local CPU
# wheel (pip find-links); a plain `torch` requirement would pull several GB of CUDA packages.
# The peer and its direct dependencies are pinned below to the versions that ran the verification;
# locks/<name>.txt (pip freeze of that environment, torch excluded) constrains everything else.
# Environment: PYTHON (default python3, 3.11 here), PIP_ARGS (extra pip arguments).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENVS="$HERE/.venvs"
PYTHON=${PYTHON:-python3}
read -r -a EXTRA <<<"${PIP_ARGS:-}"

TORCH="torch==2.13.0"
COMMON="anndata==0.12.19 scanpy==1.11.5 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1 pandas==2.3.3"
ALL=(graphst stagate banksy squidpy)

packages() {  # pinned requirements of each environment (torch comes separately, first)
    case $1 in
        graphst) echo "graphst-modern==1.1.1.post3 POT==0.9.7.post1 scikit-misc==0.5.3 $COMMON" ;;
        stagate) echo "stagate-modern==1.0.0.post1 torch-geometric==2.8.1 scikit-misc==0.5.3 $COMMON" ;;
        banksy) echo "pybanksy==1.3.5 leidenalg==0.12.0 igraph==1.0.0 umap-learn==0.5.12 $COMMON" ;;
        squidpy) echo "squidpy==1.8.2 spatialdata==0.7.3 scikit-misc==0.5.3 $COMMON" ;;  # + run_baseline.py
        *) return 1 ;;
    esac
}

needs_torch() { [[ $1 == graphst || $1 == stagate ]]; }

imports() {  # what must import for the environment to count as installed
    case $1 in
        graphst) echo "import torch, GraphST.GraphST, GraphST.utils, scanpy, sklearn, skmisc" ;;
        stagate) echo "import torch, torch_geometric, STAGATE_pyG, scanpy, sklearn, skmisc" ;;
        banksy) echo "import banksy.embed_banksy, banksy.cluster_methods, banksy_utils.umap_pca, scanpy, sklearn, leidenalg" ;;
        squidpy) echo "import squidpy, squidpy.gr._niche, scanpy, sklearn, skmisc" ;;
    esac
}

installed() { [[ -x $VENVS/$1/bin/python ]] && "$VENVS/$1/bin/python" -c "$(imports "$1")" >/dev/null 2>&1; }

setup_one() {
    local name=$1 py="$VENVS/$1/bin/python" lock="$HERE/locks/$1.txt" constraints=()
    if installed "$name"; then
        echo "[$name] present and importable: skipped"
        return 0
    fi
    [[ -x $py ]] || "$PYTHON" -m venv "$VENVS/$name" || return 1
    [[ -f $lock ]] && constraints=(-c "$lock")
    if needs_torch "$name"; then
        "$py" -m pip install "${EXTRA[@]}" "$TORCH" || return 1
    fi
    # shellcheck disable=SC2046  # word splitting of the package list is intended
    "$py" -m pip install "${EXTRA[@]}" "${constraints[@]}" $(packages "$name") || return 1
    if needs_torch "$name"; then
        "$py" -c 'import torch, sys; sys.exit(0 if "+cpu" in torch.__version__ else "not the CPU torch wheel: " + torch.__version__)' || return 1
    fi
    installed "$name" || { echo "[$name] installed but does not import: $(imports "$name")"; return 1; }
    echo "[$name] ready: $("$py" -m pip freeze 2>/dev/null | grep -i -E '^(torch|graphst-modern|stagate-modern|pybanksy|squidpy)==' | tr '\n' ' ')"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${ALL[@]}")
mkdir -p "$VENVS"
failed=()
for name in "${names[@]}"; do
    if ! packages "$name" >/dev/null; then
        echo "unknown peer '$name' (known: ${ALL[*]})" >&2
        failed+=("$name")
        continue
    fi
    echo "[$name] setting up $VENVS/$name"
    setup_one "$name" || failed+=("$name")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all ready: ${names[*]}"
