#!/usr/bin/env bash
# Runs a command of this checkout inside a fresh Debian 12 root, as a new user's machine would
# run it: only what Debian's minimal base system holds, plus what our own scripts install.
#   scripts/fresh_root.sh scripts/test.sh     (what .ci/run does)
#
# The root is made with mmdebstrap (minbase, bookworm). Into it go what this machine's package
# clients need to reach the package registries, read from this machine at run time (apt sources
# and its Acquire settings, the CA bundle and local CAs, the pip configuration and PIP_* and proxy
# variables, /etc/hosts), and a copy of the checkout (without build/, data/, out/). /proc, /sys,
# /dev and /dev/shm are bound (with the mounts below them); the CUDA toolkit, the one prerequisite that is no Debian package, is bound
# read-only when this machine has one. Needs root. The root is unmounted and deleted at the end.
#   SKIM_FRESH_ROOT_KEEP=1   keep the root (its path is printed) for a look after a failure
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...] (run in the checkout's copy)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "fresh_root: needs root (mmdebstrap, chroot, mount)" >&2; exit 2; }

if ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
    >/dev/null
fi

root="$(mktemp -d "${TMPDIR:-/tmp}/skim-fresh-root.XXXXXX")"
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[i]}" || umount -R -l "${mounted[i]}"
  done
  if [ -n "${SKIM_FRESH_ROOT_KEEP:-}" ]; then
    echo "fresh_root: kept $root" >&2
  elif grep -q " $root" /proc/mounts; then
    echo "fresh_root: $root still has mounts; not deleting it" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT

bind() {  # bind SOURCE [ro]: SOURCE and the mounts below it at the same path inside the root
  mkdir -p "$root$1"
  mount --rbind "$1" "$root$1"
  mount --make-rslave "$root$1"  # unmounting ours must not unmount the machine's
  mounted+=("$root$1")
  [ "${2:-}" != ro ] || mount -o remount,bind,ro "$root$1"
}

# The apt sources of this machine, deb822 files and one-line lists alike.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && sources+=("$f")
done
# apt settings about reaching the archive (proxies, snapshot validity), not local habits.
aptopts=()
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && grep -q '^[[:space:]]*Acquire' "$f" && aptopts+=(--aptopt="$f")
done
echo "fresh_root: creating a Debian 12 root in $root" >&2
mmdebstrap --quiet --variant=minbase "${aptopts[@]}" bookworm "$root" "${sources[@]}"

# CA bundle and local CAs (ca-certificates, once apt installs it, rebuilds the bundle from these).
mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
# pip configuration, wherever pip reads it.
for f in /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.pip/pip.conf" "$HOME/.config/pip/pip.conf"; do
  [ -f "$f" ] || continue
  dest="$root${f/#$HOME//root}"
  mkdir -p "$(dirname "$dest")"
  cp "$f" "$dest"
done
# Name resolution as on this machine (slurmd and munged look up the host's own name).
cp /etc/resolv.conf /etc/hosts /etc/hostname "$root/etc/" 2>/dev/null || true

bind /proc
bind /sys ro  # with /sys/fs/cgroup below it, which slurmd checks for
bind /dev     # with /dev/shm and /dev/pts
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The toolkit's own folder, as nvcc reports it: nvcc on PATH may be a wrapper script in a shared
# folder such as /usr/local/bin, and binding that folder would hide the root's own.
cuda=""
if command -v nvcc >/dev/null; then
  cuda="$(nvcc -dryrun -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)"
  [ -z "$cuda" ] || cuda="$(readlink -f "$cuda")"
fi
[ -n "$cuda" ] || cuda="$(readlink -f /usr/local/cuda 2>/dev/null || true)"
case "$cuda" in
  / | /usr | /usr/local | /opt) cuda="" ;;  # a shared folder, not a toolkit of its own
esac
if [ -n "$cuda" ] && [ -x "$cuda/bin/nvcc" ]; then
  bind "$cuda" ro
  [ "$cuda" = /usr/local/cuda ] || ln -sfn "$cuda" "$root/usr/local/cuda"
  path="$cuda/bin:$path"
  echo "fresh_root: CUDA from $cuda (read-only)" >&2
else
  echo "fresh_root: no CUDA toolkit on this machine; the build inside is CPU-only" >&2
fi

mkdir -p "$root/src"
tar -C "$src" --exclude=./build --exclude='./build-*' --exclude=./data --exclude=./out -cf - . \
  | tar -C "$root/src" -xf -

# A clean environment: what a new user's shell has, plus the registry settings.
env_vars=(HOME=/root PATH="$path" LANG=C.UTF-8 TERM=dumb CI="${CI:-}")
while IFS='=' read -r name _; do
  case "$name" in
    PIP_* | http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY)
      env_vars+=("$name=${!name}") ;;
  esac
done < <(env)

echo "fresh_root: running $* in the fresh root" >&2
chroot "$root" /usr/bin/env -i "${env_vars[@]}" /bin/bash -c 'cd /src && exec "$@"' bash "$@"
