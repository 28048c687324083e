#!/bin/bash
# Build the synapse-bmz CPU image with podman on a machine that reaches the
# package registries (Debian, PyPI) but no container registry:
#
#   1. a minimal Debian root filesystem (debootstrap --variant=minbase bookworm)
#      imported as localhost/debian-base:bookworm (skipped when it exists);
#   2. containers/Dockerfile on that base with CPU torch, the host's CA bundle
#      and pip configuration (find-links, extra index) mounted into the build;
#   3. optionally (--sif, where apptainer is installed) synapse-bmz.sif.
#
# usage: containers/build_local.sh [--sif] [--rebuild-base]
# environment: IMAGE (localhost/synapse-bmz:VERSION-cpu), BASE_IMAGE
#   (localhost/debian-base:bookworm), TORCH_VARIANT (cpu), WORK_DIR (build/containers),
#   DEBIAN_MIRROR (http://deb.debian.org/debian), CONTAINERS_CONF (containers/containers.conf)
# Prints the build time and the image size at the end and writes them to
# WORK_DIR/image-info.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

want_sif=0
rebuild_base=0
for arg in "$@"; do
    case "$arg" in
        --sif) want_sif=1 ;;
        --rebuild-base) rebuild_base=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build_local.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n1)
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
IMAGE=${IMAGE:-localhost/synapse-bmz:${version}-${TORCH_VARIANT}}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-base:bookworm}
WORK_DIR=${WORK_DIR:-$repo/build/containers}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
mkdir -p "$WORK_DIR"

need() {  # command, Debian package
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing $2 (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
    fi
    command -v "$1" >/dev/null 2>&1 || { echo "build_local.sh: $1 is missing (Debian package $2)" >&2; exit 1; }
}
need podman podman
need runc runc

t0=$(date +%s)

# 1. base image -------------------------------------------------------------
if [ "$rebuild_base" = 1 ] || ! podman image exists "$BASE_IMAGE"; then
    case "$BASE_IMAGE" in
        localhost/debian-base:bookworm) ;;
        *) echo "build_local.sh: base image $BASE_IMAGE is missing and only localhost/debian-base:bookworm is made here" >&2; exit 1 ;;
    esac
    need debootstrap debootstrap
    rootfs="$WORK_DIR/rootfs"
    rm -rf "$rootfs"
    echo "== debootstrap --variant=minbase bookworm ($DEBIAN_MIRROR)"
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" > "$WORK_DIR/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK_DIR/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    echo "== podman import -> $BASE_IMAGE"
    tar -C "$rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
fi
t1=$(date +%s)

# 2. build context: only what the Dockerfile copies, tracked or new (not ignored)
ctx="$WORK_DIR/context"
rm -rf "$ctx"
mkdir -p "$ctx"
git ls-files -z -co --exclude-standard -- pyproject.toml constraints.txt README.md \
        synapse_bmz postprocessing analysis model_packages \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar -c --null -T - | tar -C "$ctx" -x

# 3. pip inside the build: the host's CA bundle and its find-links / index settings
mounts=()
ca=/etc/ssl/certs/ca-certificates.crt
pipconf="$WORK_DIR/pip.conf"
{
    echo "[global]"
    if [ -f "$ca" ]; then
        echo "cert = /run/host-ca.crt"
        mounts+=(-v "$ca:/run/host-ca.crt:ro")
    fi
} > "$pipconf"
host_pip() { python3 -m pip config list 2>/dev/null || true; }
pip_value() {  # key: the last value pip's configuration (files or PIP_* variables) gives it
    host_pip | sed -n "s/^[^.]*\.$1='\(.*\)'$/\1/p" | tail -n1
}
for key in find-links extra-index-url index-url default-timeout; do
    value=$(pip_value "$key")
    [ -n "$value" ] || continue
    echo "$key = $value" >> "$pipconf"
    for item in $value; do
        path=${item#file://}
        path=${path%/}
        # a local index's pages point at files beside simple/: mount its parent
        [ "${path##*/}" = simple ] && path=${path%/simple}
        case "$path" in
            /*) [ -d "$path" ] && mounts+=(-v "$path:$path:ro") ;;
        esac
    done
done
mounts+=(-v "$pipconf:/etc/pip.conf:ro")
echo "== pip configuration inside the build:"; sed 's/^/   /' "$pipconf"

# 4. the image ----------------------------------------------------------------
source_url=$(git config --get remote.origin.url 2>/dev/null || echo "$repo")
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
echo "== podman build $IMAGE (base $BASE_IMAGE, torch $TORCH_VARIANT)"
podman build --format docker --network host \
    "${mounts[@]}" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg TORCH_VARIANT="$TORCH_VARIANT" \
    --build-arg TORCH_CPU_INDEX= \
    --build-arg VERSION="$version" \
    --build-arg SOURCE="$source_url" \
    --build-arg REVISION="$revision" \
    -f "$here/Dockerfile" -t "$IMAGE" "$ctx"
t2=$(date +%s)

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
info="$WORK_DIR/image-info.txt"
{
    echo "image $IMAGE"
    echo "size_bytes $size"
    echo "size_gb $(awk -v s="$size" 'BEGIN{printf "%.2f", s/1e9}')"
    echo "base_seconds $((t1 - t0))"
    echo "build_seconds $((t2 - t1))"
} | tee "$info"

# 5. Apptainer image ----------------------------------------------------------
if [ "$want_sif" = 1 ]; then
    if ! command -v apptainer >/dev/null 2>&1; then
        echo "build_local.sh: --sif needs apptainer, which is not installed (no Debian bookworm package)" >&2
        exit 1
    fi
    podman save --format docker-archive -o "$WORK_DIR/synapse-bmz.tar" "$IMAGE"
    (cd "$WORK_DIR" && apptainer build --force synapse-bmz.sif "$here/synapse-bmz.def")
    echo "sif $WORK_DIR/synapse-bmz.sif $(stat -c %s "$WORK_DIR/synapse-bmz.sif")" | tee -a "$info"
fi
