package capture

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// gateFrame returns frame i of the gate clip.
func gateFrame(tb testing.TB, i int) gocv.Mat {
	tb.Helper()
	src, err := OpenFile(context.Background(), gateClip, Options{FPS: -1})
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	for {
		f, err := src.Next(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if int(f.Seq) == i+1 {
			return f.Mat
		}
		f.Close()
	}
}

// BenchmarkAssess: face detection, landmarks and quality of one frame with
// the traveller's face in it, at camera resolutions (the detector sees at
// most DetectWidth 640 pixels across).
func BenchmarkAssess(b *testing.B) {
	sel := newSelector(b)
	base := gateFrame(b, gateBestFirst)
	defer base.Close()
	for _, size := range []image.Point{{640, 480}, {1280, 960}, {1920, 1440}} {
		frame := gocv.NewMat()
		gocv.Resize(base, &frame, size, 0, 0, gocv.InterpolationLinear)
		b.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c, err := sel.Assess(frame)
				if err != nil || len(c) != 1 {
					b.Fatalf("%d faces, %v", len(c), err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
		frame.Close()
	}
}

// BenchmarkReadAndBestShot: one camera's sustained rate of frames read,
// decoded and assessed, every frame (the gate clip, 640x480 H.264, looped,
// read without drops).
func BenchmarkReadAndBestShot(b *testing.B) {
	sel := newSelector(b)
	src, err := OpenFile(context.Background(), gateClip, Options{FPS: -1, Loop: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	w := sel.NewWindow()
	defer w.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := src.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := w.Offer(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkRTSPCamera: an RTSP camera at 25 fps (GStreamer on loopback,
// 640x480 H.264) read while best shots are taken back to back: how many
// frames a second are assessed, and how many the reader takes in (the rest
// are dropped, not queued). One op is one frame assessed.
func BenchmarkRTSPCamera(b *testing.B) {
	srv := startRTSP(b, clipFrames(b, gateClip), 25)
	src, err := OpenStream(context.Background(), srv.URL(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	sel := newSelector(b)
	w := sel.NewWindow()
	defer w.Close()
	read0 := src.Status().FramesRead
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := src.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := w.Offer(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	s := b.Elapsed().Seconds()
	st := src.Status()
	b.ReportMetric(float64(b.N)/s, "assessed/s")
	b.ReportMetric(float64(st.FramesRead-read0)/s, "read/s")
}

// BenchmarkFaceToShot: the time from a face entering a camera's view to
// the best shot. The camera is a folder replayed at 10 fps with drops, like
// a live camera: 10 frames of an empty gate, then 20 of the traveller's
// sharp, lit, frontal face, looped. Each op waits for the empty part and
// then takes a best shot; the face's entry time follows from the frame
// numbers. An RTSP camera adds its own transport and decoding delay.
func BenchmarkFaceToShot(b *testing.B) {
	const fps, empty, loop = 10.0, 10, 30
	dir := b.TempDir()
	blank, face := gateFrame(b, 0), gateFrame(b, gateBestFirst)
	defer blank.Close()
	defer face.Close()
	for i := 0; i < loop; i++ {
		m := blank
		if i >= empty {
			m = face
		}
		if !gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("%02d.png", i)), m) {
			b.Fatal("cannot write a frame")
		}
	}
	src, err := OpenFolder(context.Background(), dir, Options{FPS: fps, Loop: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	sel := newSelector(b)
	var total, worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for { // wait for the empty gate
			f, err := src.Next(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			idx := int(f.Seq-1) % loop
			f.Close()
			if idx < 3 {
				break
			}
		}
		b.StartTimer()
		shot, err := sel.BestShot(context.Background(), src, BestShotOptions{Window: 10 * time.Second})
		done := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		idx := int(shot.Seq-1) % loop
		entered := shot.Time.Add(-time.Duration(float64(idx-empty) / fps * float64(time.Second)))
		d := done.Sub(entered)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-face-to-shot")
	b.ReportMetric(float64(worst.Milliseconds()), "ms-worst")
}
