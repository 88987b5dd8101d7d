#!/usr/bin/env bash
# Put promtool (Prometheus's rule checker, used by the alert-rule tests) at DEST.
# A promtool on PATH is linked; otherwise the binary is taken from Debian's `prometheus`
# package: fetched with `apt-get download` and unpacked here, nothing installed system-wide.
# Usage: scripts/install-promtool.sh DEST
set -euo pipefail
dest=$(realpath -m "${1:?usage: scripts/install-promtool.sh DEST}")
mkdir -p "$(dirname "$dest")"
if found=$(command -v promtool); then
  ln -sf "$found" "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# As root, apt would hand the download to its `_apt` user, who cannot write to this private dir.
download() { apt-get -qq -o APT::Sandbox::User="$(id -un)" download prometheus; }
if ! download; then
  # A fresh machine may have no package lists yet: fetch them once when allowed to.
  [ "$(id -u)" = 0 ] || { echo "install-promtool: apt-get download failed; install the Debian package prometheus (or put promtool on PATH)" >&2; exit 1; }
  apt-get -qq update
  download
fi
dpkg-deb -x prometheus_*.deb root
install -m 0755 root/usr/bin/promtool "$dest"
"$dest" --version | head -1
