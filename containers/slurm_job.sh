#!/bin/bash
# Example SLURM job: segment every tomogram in a folder on one GPU node.
#SBATCH --job-name=synapse-bmz
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=02:00:00
set -euo pipefail
IN=${1:?input folder}
OUT=${2:?output folder}
apptainer run --nv --bind "$IN","$OUT" synapse-bmz.sif run vesicles_2d "$IN" -o "$OUT" --quiet
