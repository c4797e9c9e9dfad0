#!/usr/bin/env bash
# Fetches uPlot (the console's charting library, MIT) from the npm registry
# at a pinned version, checks the tarball against the sha256 below, and
# copies the three files the console embeds into
# crates/vigil-console/assets/vendor/. The copies are committed, so
# `cargo build` needs neither npm nor the network; run this only to move
# to another version (change both lines, then commit the new files).
#
# The sha256 was taken from the tarball whose sha512 matches the
# registry's `dist.integrity` for the version
# (`npm view uplot@VERSION dist.integrity`).
set -euo pipefail

VERSION=1.6.32
SHA256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
URL="https://registry.npmjs.org/uplot/-/uplot-${VERSION}.tgz"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/crates/vigil-console/assets/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

curl -sSfL --retry 3 -o "$work/uplot.tgz" "$URL"
echo "$SHA256  $work/uplot.tgz" | sha256sum -c --quiet -
tar -xzf "$work/uplot.tgz" -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
cp "$work/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
echo "uPlot $VERSION -> $dest"
