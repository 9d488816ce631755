#!/usr/bin/env bash
# Builds the wxp-server and wxp-agent container images with Debian's own tools, no Docker
# engine and no registry but the Debian archive:
#   1. installs podman, debootstrap and what podman needs here (runc, fuse-overlayfs, uidmap,
#      slirp4netns) from Debian, if missing;
#   2. makes a Debian bookworm root filesystem with debootstrap (minbase) from the archive and
#      imports it as the image localhost/wxp-bookworm-base, once: the tarball is cached in the
#      work directory, so later runs skip it (--rebase makes it again);
#   3. stages the Bazel-built binaries (bazel-bin/server/app/wxp-server, bazel-bin/client/wxpctl,
#      bazel-bin/client/agent/wxp-agent; built first if missing) into a build context;
#   4. builds localhost/wxp-server and localhost/wxp-agent from deploy/containers/Dockerfile.*
#      FROM that base; the runtime libraries come from Debian packages installed by apt inside
#      the image build (a layer podman caches, so a rebuild only copies the binaries).
#
#   deploy/build-images.sh [--work DIR] [--mirror URL] [--rebase]
#
# --work: the cache (default /var/tmp/wxp-images): base-bookworm.tar (about 120 MB) and the
# staged context. The images themselves live in podman's storage (root:
# /var/lib/containers/storage); `podman rmi localhost/wxp-server localhost/wxp-agent
# localhost/wxp-bookworm-base` removes them. Runs as root (debootstrap needs it).
#
# Why the podman flags below (deploy/README.md, "Container images"): on hosts where the
# process may not raise resource limits (no CAP_SYS_RESOURCE) podman's default ulimits fail
# with "setrlimit RLIMIT_NOFILE: Operation not permitted", so the build and run use the
# current limits; on a hybrid cgroup v1/v2 host crun refuses ("cgroups in hybrid mode not
# supported"), so WXP_OCI_RUNTIME defaults to runc. deploy/run-images.sh uses the same.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WORK=/var/tmp/wxp-images MIRROR=http://deb.debian.org/debian REBASE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --work) WORK=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --rebase) REBASE=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "build-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "build-images: run as root (debootstrap and podman's storage)" >&2; exit 2; }

BASE_IMAGE=localhost/wxp-bookworm-base
# Same three lines in deploy/run-images.sh.
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
PODMAN=(podman --runtime "${WXP_OCI_RUNTIME:-runc}")
ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)

step() {
  [ -z "${STEP_START:-}" ] || printf '(%d s)\n' $((SECONDS - STEP_START))
  STEP_START=$SECONDS
  printf '\n== %s\n' "$*"
}

step "1/4 podman, debootstrap and their helpers from Debian"
NEEDED=(debootstrap podman runc conmon fuse-overlayfs uidmap slirp4netns containernetworking-plugins)
MISSING=()
for p in "${NEEDED[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  echo "installing ${MISSING[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${MISSING[@]}"
fi
"${PODMAN[@]}" --version

step "2/4 the bookworm base image (debootstrap, cached in $WORK)"
mkdir -p "$WORK"
TARBALL=$WORK/base-bookworm.tar
if [ "$REBASE" -eq 1 ] || [ ! -s "$TARBALL" ]; then
  rootfs=$WORK/rootfs.tmp
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR"
  # The binaries were built against the host's bookworm with its point and security updates.
  cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
  # What debootstrap leaves behind that no image needs.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$rootfs"
  "${PODMAN[@]}" rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
else
  echo "cached: $TARBALL ($(du -h "$TARBALL" | cut -f1); --rebase makes it again)"
fi
if ! "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
  "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$TARBALL" "$BASE_IMAGE"
fi

step "3/4 the Bazel-built binaries, staged as the build context"
BINARIES=(server/app/wxp-server client/wxpctl client/wxpctl-tensors client/agent/wxp-agent)
for b in "${BINARIES[@]}"; do
  if [ ! -x "bazel-bin/$b" ]; then
    bazel build ${WXP_BAZEL_FLAGS:-} //server/app:wxp-server //client:wxpctl //client/agent:wxp-agent
    break
  fi
done
CONTEXT=$WORK/context
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/bin"
for b in "${BINARIES[@]}"; do install -m 0755 "bazel-bin/$b" "$CONTEXT/bin/"; done
install -m 0644 deploy/examples/server.textproto "$CONTEXT/"
ls -l "$CONTEXT/bin"

step "4/4 the images (the package layer is cached after the first build)"
for kind in server agent; do
  "${PODMAN[@]}" build "${ULIMITS[@]}" --network=host --layers \
    --build-arg BASE="$BASE_IMAGE" -f "deploy/containers/Dockerfile.$kind" \
    -t "localhost/wxp-$kind" "$CONTEXT"
done
printf '(%d s)\n' $((SECONDS - STEP_START))
"${PODMAN[@]}" images --filter reference='localhost/wxp-*'
