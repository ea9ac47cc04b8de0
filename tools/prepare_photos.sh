#!/usr/bin/env bash
# Builds the photograph set of README "Results on real photographs": 37 training images (the 30
# Debian `plasma-workspace-wallpapers`, the largest file of each, plus 7 of the 9 shared photos)
# and 2 held-out ones (chelsea.png, china.jpg).
#
#   bash tools/prepare_photos.sh SHARED_PHOTOS_DIR OUT_DIR
#
# writes OUT_DIR/train and OUT_DIR/val (and OUT_DIR/wallpapers.deb). Needs `apt-get download`
# (a Debian package mirror) once; nothing is copied into the repository.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 SHARED_PHOTOS_DIR OUT_DIR" >&2
    exit 2
fi
photos=$(cd "$1" && pwd)
out=$2
for held_out in chelsea.png china.jpg; do
    [ -f "$photos/$held_out" ] || { echo "$photos/$held_out: not found" >&2; exit 1; }
done

mkdir -p "$out/train" "$out/val"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$out/wallpapers.deb" ]; then
    (cd "$work" && apt-get download plasma-workspace-wallpapers >/dev/null)
    mv "$work"/plasma-workspace-wallpapers_*.deb "$out/wallpapers.deb"
fi
dpkg-deb -x "$out/wallpapers.deb" "$work/deb"

# One image per wallpaper: the file with the most pixels (names are WIDTHxHEIGHT.ext).
count=0
for dir in "$work"/deb/usr/share/wallpapers/*/; do
    name=$(basename "$dir")
    best=$(ls "$dir/contents/images" \
        | awk -Fx '{ split($2, h, "."); print $1 * h[1], $0 }' \
        | sort -n | tail -1 | cut -d' ' -f2)
    cp "$dir/contents/images/$best" "$out/train/$name-$best"
    count=$((count + 1))
done

for file in "$photos"/*.png "$photos"/*.jpg; do
    case $(basename "$file") in
        chelsea.png | china.jpg) cp "$file" "$out/val/" ;;
        *) cp "$file" "$out/train/"; count=$((count + 1)) ;;
    esac
done
echo "$out/train: $count images; $out/val: $(ls "$out/val" | wc -l) images"
