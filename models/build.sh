#!/usr/bin/env bash
# Builds the three model files go-face opens into DIR (default: this folder).
# Idempotent: a file that is already there is left alone. Downloads only from
# the npm registry (the face network's weights, once).
#
#   dlib_face_recognition_resnet_model_v1.dat  from @vladmandic/face-api's TF.js
#                                              weights, converted by tfjs2dlib.cc
#   shape_predictor_5_face_landmarks.dat       Debian's 68-point model (libdlib-data),
#                                              under the name go-face opens
#   mmod_human_face_detector.dat               the committed .bz2, decompressed
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

FACE_API=@vladmandic/face-api@1.7.15
RESNET=dlib_face_recognition_resnet_model_v1.dat
SHAPE=shape_predictor_5_face_landmarks.dat
MMOD=mmod_human_face_detector.dat
LANDMARKS68=/usr/share/dlib/shape_predictor_68_face_landmarks.dat

die() { echo "models: $*" >&2; exit 1; }

if [ ! -s "$dir/$MMOD" ]; then
	bunzip2 -c "$here/$MMOD.bz2" > "$dir/$MMOD.tmp" || die "cannot decompress $here/$MMOD.bz2"
	mv "$dir/$MMOD.tmp" "$dir/$MMOD"
	echo "models: wrote $dir/$MMOD"
fi

if [ ! -s "$dir/$SHAPE" ]; then
	if [ ! -s "$LANDMARKS68" ] && [ -s "$LANDMARKS68.bz2" ]; then
		bunzip2 -c "$LANDMARKS68.bz2" > "$dir/$SHAPE.tmp"
	else
		[ -s "$LANDMARKS68" ] || die "$LANDMARKS68 is missing: install the Debian package libdlib-data (make deps)"
		cp "$LANDMARKS68" "$dir/$SHAPE.tmp"
	fi
	mv "$dir/$SHAPE.tmp" "$dir/$SHAPE"
	echo "models: wrote $dir/$SHAPE (dlib's 68-point landmark model; its training data restricts commercial use, see models/SOURCES.md)"
fi

if [ ! -s "$dir/$RESNET" ]; then
	command -v npm >/dev/null || die "npm is needed to fetch $FACE_API: install the Debian package npm (make deps)"
	command -v node >/dev/null || die "node is needed to read the TF.js weights: install the Debian package nodejs"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	echo "models: fetching $FACE_API from the npm registry"
	(cd "$work" && npm pack --silent "$FACE_API" >/dev/null) || die "npm pack $FACE_API failed"
	tar -xzf "$work"/*.tgz -C "$work" package/model/face_recognition_model-weights_manifest.json package/model/face_recognition_model.bin
	node "$here/dequant.js" "$work/package/model/face_recognition_model-weights_manifest.json" "$work/weights"
	echo "models: compiling tfjs2dlib against dlib (about a minute)"
	g++ -std=c++17 -O2 -DDLIB_PNG_SUPPORT -DDLIB_JPEG_SUPPORT -o "$work/tfjs2dlib" "$here/tfjs2dlib.cc" \
		-ldlib -lblas -lcblas -llapack -ljpeg -lpng || die "compiling tfjs2dlib failed (is libdlib-dev installed?)"
	"$work/tfjs2dlib" "$work/weights" "$dir/$RESNET.tmp"
	mv "$dir/$RESNET.tmp" "$dir/$RESNET"
	echo "models: wrote $dir/$RESNET"
fi
