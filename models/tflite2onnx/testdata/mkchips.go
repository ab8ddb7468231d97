//go:build ignore

// mkchips writes the 112×112 face chips of this folder from the face photos
// in testdata/faces: run it from the repository root as
//
//	go run ./models/tflite2onnx/testdata/mkchips.go
//
// The crops are rough squares around each face at about ArcFace scale (eye
// distance ≈ 35 of 112 pixels), resized with Catmull-Rom; the chips only need
// to be realistic face inputs for comparing two runtimes. Eight are grey
// (bbt/*/1.png), four colour, so that a swap of the colour channels shows.
package main

import (
	"image"
	"image/draw"
	_ "image/jpeg"
	"image/png"
	"log"
	"os"
	"path/filepath"

	xdraw "golang.org/x/image/draw"
)

type chip struct {
	out, src string
	crop     image.Rectangle // empty: the whole image
}

func main() {
	const faces, dir = "testdata/faces", "models/tflite2onnx/testdata"
	var chips []chip
	for _, p := range []string{"amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"} {
		chips = append(chips, chip{out: "bbt-" + p + ".png", src: "bbt/" + p + "/1.png"})
	}
	chips = append(chips,
		chip{"angry.png", "reference/angry.jpg", image.Rect(68, 35, 220, 187)},
		chip{"rectangular.png", "reference/face_rectangular.png", image.Rect(2, 36, 119, 153)},
		chip{"group-raj.png", "reference/faces.jpg", image.Rect(206, 29, 349, 172)},
		chip{"group-sheldon.png", "reference/faces.jpg", image.Rect(436, 152, 595, 311)},
	)
	for _, c := range chips {
		f, err := os.Open(filepath.Join(faces, c.src))
		if err != nil {
			log.Fatal(err)
		}
		im, _, err := image.Decode(f)
		f.Close()
		if err != nil {
			log.Fatalf("%s: %v", c.src, err)
		}
		r := c.crop
		if r.Empty() {
			r = im.Bounds()
		}
		dst := image.NewRGBA(image.Rect(0, 0, 112, 112))
		draw.Draw(dst, dst.Bounds(), image.White, image.Point{}, draw.Src)
		xdraw.CatmullRom.Scale(dst, dst.Bounds(), im, r, xdraw.Src, nil)
		o, err := os.Create(filepath.Join(dir, c.out))
		if err != nil {
			log.Fatal(err)
		}
		if err := png.Encode(o, dst); err != nil {
			log.Fatal(err)
		}
		if err := o.Close(); err != nil {
			log.Fatal(err)
		}
	}
}
