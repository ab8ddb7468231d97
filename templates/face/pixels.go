package face

import (
	"image"
	"image/color"
	"image/draw"

	"gocv.io/x/gocv"
)

// rgbImage is an 8-bit RGB image, row major, three bytes a pixel: what
// dlib and OpenCV read.
type rgbImage struct {
	pix  []byte
	w, h int
}

// toRGB converts a decoded image. Alpha is dropped after compositing onto
// black (as dlib's own PNG loader does).
func toRGB(img image.Image) rgbImage {
	b := img.Bounds()
	out := rgbImage{pix: make([]byte, b.Dx()*b.Dy()*3), w: b.Dx(), h: b.Dy()}
	i := 0
	switch m := img.(type) {
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := m.YOffset(x, y), m.COffset(x, y)
				out.pix[i], out.pix[i+1], out.pix[i+2] = color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				i += 3
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, g := range m.Pix[m.PixOffset(b.Min.X, y):m.PixOffset(b.Max.X, y)] {
				out.pix[i], out.pix[i+1], out.pix[i+2] = g, g, g
				i += 3
			}
		}
	default:
		rgba := image.NewRGBA(b)
		draw.Draw(rgba, b, img, b.Min, draw.Src)
		for j := 0; j < len(rgba.Pix); j += 4 {
			out.pix[i], out.pix[i+1], out.pix[i+2] = rgba.Pix[j], rgba.Pix[j+1], rgba.Pix[j+2]
			i += 3
		}
	}
	return out
}

// resized is a copy at w x h (area interpolation, which is what a
// reduction should use).
func (p rgbImage) resized(w, h int) rgbImage {
	src, err := gocv.NewMatFromBytes(p.h, p.w, gocv.MatTypeCV8UC3, p.pix)
	if err != nil {
		return p
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return rgbImage{pix: dst.ToBytes(), w: w, h: h}
}

// padFraction is how much padded extends each side of the image, as a
// fraction of its size.
const padFraction = 0.5

// padded is a copy with every edge extended by replicating it, and the
// offset of the original inside it: a face cropped tight to its chin and
// brow, which the detectors were trained never to see, becomes a face in a
// frame.
func (p rgbImage) padded() (rgbImage, int, int) {
	dx, dy := int(float64(p.w)*padFraction), int(float64(p.h)*padFraction)
	src, err := gocv.NewMatFromBytes(p.h, p.w, gocv.MatTypeCV8UC3, p.pix)
	if err != nil {
		return p, 0, 0
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.CopyMakeBorder(src, &dst, dy, dy, dx, dx, gocv.BorderReplicate, color.RGBA{})
	return rgbImage{pix: dst.ToBytes(), w: dst.Cols(), h: dst.Rows()}, dx, dy
}
