package capture

import (
	"flag"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

var genVideo = flag.Bool("gen-video", false, "regenerate testdata/video/gate.mp4 from testdata/faces (see testdata/video/SOURCES.md)")

// gateScene says what frame i of the generated gate clip shows: a
// traveller's face approaching the camera, blurred, then tilted, then
// underexposed, then sharp and well lit, then leaving.
type gateScene struct {
	size   int     // face side in pixels; 0: no face
	blur   int     // Gaussian kernel; 0: none
	roll   float64 // degrees
	bright float64 // brightness factor
}

const gateFrames, gateFPS = 60, 10

// The frame where the sharp, frontal, well exposed face appears, which the
// tests expect the best shot from.
const gateBestFirst, gateBestLast = 38, 47

func gateSceneAt(i int) gateScene {
	switch {
	case i < 10:
		return gateScene{}
	case i < 18:
		return gateScene{size: 90 + (i-10)*6, blur: 9, bright: 1}
	case i < 26:
		return gateScene{size: 200, roll: 25, bright: 1}
	case i < 32:
		return gateScene{size: 220, blur: 7, bright: 1}
	case i < 38:
		return gateScene{size: 240, bright: 0.3}
	case i <= gateBestLast:
		return gateScene{size: 260, bright: 1}
	}
	return gateScene{}
}

// TestGenerateGateVideo writes testdata/video/gate.mp4 with -gen-video. The
// clip is committed; the flag is for rebuilding it.
func TestGenerateGateVideo(t *testing.T) {
	if !*genVideo {
		t.Skip("run with -gen-video to regenerate testdata/video/gate.mp4")
	}
	face := gocv.IMRead("../testdata/faces/bbt/leonard/2.png", gocv.IMReadColor)
	defer face.Close()
	if face.Empty() {
		t.Fatal("cannot read the face photo")
	}
	const w, h = 640, 480
	out := filepath.Join("..", "testdata", "video", "gate.mp4")
	os.MkdirAll(filepath.Dir(out), 0o755)
	vw, err := gocv.VideoWriterFile(out, "avc1", gateFPS, w, h, true)
	if err != nil {
		t.Fatal(err)
	}
	defer vw.Close()
	bg := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer bg.Close()
	for y := 0; y < h; y++ {
		v := uint8(150 - y*60/h)
		gocv.Line(&bg, image.Pt(0, y), image.Pt(w-1, y), color.RGBA{v, v + 10, v + 20, 0}, 1)
	}
	gocv.Rectangle(&bg, image.Rect(60, 40, 580, 470), color.RGBA{90, 80, 70, 0}, 12) // a door frame
	gocv.Rectangle(&bg, image.Rect(0, 440, w, h), color.RGBA{60, 60, 60, 0}, -1)
	for i := 0; i < gateFrames; i++ {
		frame := bg.Clone()
		sc := gateSceneAt(i)
		if sc.size > 0 {
			f := gocv.NewMat()
			gocv.Resize(face, &f, image.Pt(sc.size, sc.size), 0, 0, gocv.InterpolationCubic)
			if sc.blur > 0 {
				gocv.GaussianBlur(f, &f, image.Pt(sc.blur, sc.blur), 0, 0, gocv.BorderReflect)
			}
			if sc.roll != 0 {
				rot := gocv.GetRotationMatrix2D(image.Pt(sc.size/2, sc.size/2), sc.roll, 1)
				gocv.WarpAffineWithParams(f, &f, rot, image.Pt(sc.size, sc.size), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
				rot.Close()
			}
			if sc.bright != 1 {
				f.ConvertToWithParams(&f, gocv.MatTypeCV8UC3, float32(sc.bright), 0)
			}
			x, y := (w-sc.size)/2, 40+(400-sc.size)/2
			roi := frame.Region(image.Rect(x, y, x+sc.size, y+sc.size))
			f.CopyTo(&roi)
			roi.Close()
			f.Close()
		}
		if err := vw.Write(frame); err != nil {
			t.Fatal(err)
		}
		frame.Close()
	}
}
