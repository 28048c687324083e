#!/bin/bash
# Segment a folder of tomograms with synapse-bmz.sif on one GPU.
#
# One job for the whole folder (the inputs run one after another):
#   sbatch containers/slurm_job.sh IN_DIR OUT_DIR [MODEL]
# One array task per file (task i takes the i-th file in sorted order):
#   n=$(find IN_DIR -maxdepth 1 -type f \( -name '*.mrc' -o -name '*.rec' -o -name '*.tif' -o -name '*.tiff' -o -name '*.h5' -o -name '*.npy' \) | wc -l)
#   sbatch --array=0-$((n - 1)) containers/slurm_job.sh IN_DIR OUT_DIR [MODEL]
# Each input gets OUT_DIR/<name>/; a resubmitted job leaves finished inputs
# (--skip-existing). Environment: SIF (default ./synapse-bmz.sif),
# SYNAPSE_BMZ_ARGS (extra options for `synapse-bmz run`, e.g. "--tile 32,256,256").
#SBATCH --job-name=synapse-bmz
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=02:00:00
#SBATCH --output=synapse-bmz-%A_%a.log
set -euo pipefail
IN=$(realpath "${1:?usage: slurm_job.sh IN_DIR OUT_DIR [MODEL]}")
OUT=${2:?usage: slurm_job.sh IN_DIR OUT_DIR [MODEL]}
MODEL=${3:-vesicles_3d}
SIF=${SIF:-synapse-bmz.sif}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    mapfile -t files < <(find "$IN" -maxdepth 1 -type f \( -name '*.mrc' -o -name '*.rec' -o -name '*.tif' \
        -o -name '*.tiff' -o -name '*.h5' -o -name '*.npy' \) | sort)
    if [ "$SLURM_ARRAY_TASK_ID" -ge "${#files[@]}" ]; then
        echo "task $SLURM_ARRAY_TASK_ID: only ${#files[@]} files in $IN" >&2
        exit 1
    fi
    inputs=("${files[$SLURM_ARRAY_TASK_ID]}")
else
    inputs=("$IN")
fi

# Only the two folders are bound; the input read-only.
# shellcheck disable=SC2086  # SYNAPSE_BMZ_ARGS is a list of options
apptainer run --nv --bind "$IN:$IN:ro,$OUT:$OUT" "$SIF" \
    run "$MODEL" "${inputs[@]}" -o "$OUT" --skip-existing --quiet ${SYNAPSE_BMZ_ARGS:-}
