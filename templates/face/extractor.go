// Package face makes face templates from photos: image checks and
// decoding, detection and landmarks (dlib's HOG and CNN detectors and its
// 68-point shape predictor), alignment, the recognition network and the
// photo's quality. The network is a model: any ONNX network described by a
// descriptor file (Model), run by OpenCV's DNN module after a five-point
// ArcFace alignment, or dlib's own ResNet on its own chip. It is the only
// cgo part of the template layer; the template codec and the sample errors
// are in package templates, so that the store, the matcher and the engine
// need not link it.
package face

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"gocv.io/x/gocv"

	"github.com/bordermatch/bordermatch/capture/facedetect"
	"github.com/bordermatch/bordermatch/templates"
)

// Detector selects how faces are found.
type Detector int

const (
	// DetectorAuto runs dlib's HOG detector and, only when it finds no
	// face, tries again on the image with its edges extended (a tight
	// crop), then upsampled by 2 (small faces), then with the CNN
	// detector (turned or partly hidden faces). Most photos cost one HOG
	// pass; the hard ones cost more rather than failing to enrol.
	DetectorAuto Detector = iota
	// DetectorHOG is dlib's HOG + linear SVM frontal face detector with the
	// padded and upsampled retries but no CNN: tens to hundreds of
	// milliseconds a photo on one core.
	DetectorHOG
	// DetectorCNN is dlib's MMOD CNN detector alone: finds more faces at
	// more angles, at many times the cost on a CPU.
	DetectorCNN
)

func (d Detector) String() string {
	switch d {
	case DetectorAuto:
		return "auto"
	case DetectorHOG:
		return "hog"
	case DetectorCNN:
		return "cnn"
	}
	return fmt.Sprintf("detector(%d)", int(d))
}

// ParseDetector reads a Detector's name.
func ParseDetector(s string) (Detector, error) {
	for _, d := range []Detector{DetectorAuto, DetectorHOG, DetectorCNN} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown face detector %q (auto, hog or cnn)", s)
}

// dlibNetFile is dlib's face recognition ResNet (DlibModel), in the models
// directory that `make models` (models/build.sh) fills.
const dlibNetFile = "dlib_face_recognition_resnet_model_v1.dat"

// DetectionFiles are the files every model needs to find and align faces.
var DetectionFiles = []string{facedetect.ShapesFile, facedetect.CNNFile}

// ModelFiles are the files the extractor needs with dlib's network.
var ModelFiles = []string{dlibNetFile, facedetect.ShapesFile, facedetect.CNNFile}

// Config configures an Extractor.
type Config struct {
	// ModelsDir holds DetectionFiles and the model.
	ModelsDir string
	// Model is a model descriptor's name in ModelsDir, a descriptor's path
	// (.json), or DlibModel; empty means DefaultModel.
	Model    string
	Detector Detector
	// MaxPixels refuses larger images from their header, before decoding
	// them; 0 means DefaultMaxPixels.
	MaxPixels int
	// Workers is the number of extractions that run in parallel, each with
	// its own detectors and network (a few MB to 25 MB each; the 100 MB
	// shape predictor is shared, also between extractors of different
	// models); 0 means GOMAXPROCS.
	Workers int
}

// ErrClosed is returned by Extract after Close.
var ErrClosed = errors.New("templates: face extractor is closed")

// Dominant is how much larger than every other face the face of interest
// of an enrolment photo must be, in box area clipped to the image, for
// the extractor to take it without TakeLargest. dlib's HOG detector scans
// a pyramid of scales 1.2 apart in side, 1.44 in area: 1.4 asks for at
// least a step of the pyramid between the two, and a face cut by the
// image's edge (a bystander) counts only its visible part. The face must
// also be central (Central) and nearer the centre than any other, so two
// travellers side by side are refused however the detector sized them.
const Dominant = 1.4

// Central is how far from the image's centre, as a fraction of its shorter
// side, the face of interest of a photo with several faces may lie.
const Central = 0.25

// maxDetectSide bounds the longer side of the image the detectors search:
// a larger photo is searched on a reduced copy (its faces are large) and
// the face aligned from the full image, so a 40 MP photo costs what a
// 2.5 MP one does.
const maxDetectSide = 1600

// worker is one extraction's detectors and network.
type worker struct {
	det  *facedetect.Detector
	net  *onnxNet       // an ONNX model
	dlib *ChipDescriber // DlibModel
}

func (w *worker) close() {
	w.det.Close()
	if w.net != nil {
		w.net.close()
	}
	if w.dlib != nil {
		w.dlib.Close()
	}
}

// Extractor turns photos into face templates. It is safe for concurrent
// use: up to Workers extractions run in parallel, the others wait.
type Extractor struct {
	cfg       Config
	model     Model // zero for DlibModel
	alg       templates.Algorithm
	dim       int
	shapes    *facedetect.Shapes
	pool      chan *worker
	done      chan struct{}
	closeOnce sync.Once
	n         int
}

// NewExtractor loads the models. It fails with a message naming any
// missing model file.
func NewExtractor(cfg Config) (*Extractor, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.Detector < DetectorAuto || cfg.Detector > DetectorCNN {
		return nil, fmt.Errorf("templates: unknown detector %d", cfg.Detector)
	}
	if cfg.ModelsDir == "" {
		cfg.ModelsDir = "."
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	e := &Extractor{cfg: cfg, done: make(chan struct{})}
	need := DetectionFiles
	if cfg.Model == DlibModel {
		need = ModelFiles
		e.alg, e.dim = templates.FaceAlgorithm, templates.FaceDim
	} else {
		m, err := LoadModel(cfg.ModelsDir, cfg.Model)
		if err != nil {
			return nil, err
		}
		if err := m.checkFile(); err != nil {
			return nil, err
		}
		e.model, e.alg, e.dim = m, m.Algorithm(), m.Dim
	}
	var missing []string
	for _, f := range need {
		if st, err := os.Stat(filepath.Join(cfg.ModelsDir, f)); err != nil || st.Size() == 0 {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("templates: face model files missing in %s: %v: run `make models` (or pass --models DIR with a directory holding %v)",
			cfg.ModelsDir, missing, need)
	}
	var err error
	if e.shapes, err = facedetect.OpenShapes(filepath.Join(cfg.ModelsDir, facedetect.ShapesFile)); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if n := e.shapes.Points(); n != 68 {
		e.shapes.Close()
		return nil, fmt.Errorf("templates: %s gives %d landmarks; the alignment needs dlib's 68-point model (run `make models`)", facedetect.ShapesFile, n)
	}
	e.pool = make(chan *worker, cfg.Workers)
	for i := 0; i < cfg.Workers; i++ {
		w, err := e.newWorker()
		if err != nil {
			e.Close()
			return nil, err
		}
		e.pool <- w
		e.n++
	}
	return e, nil
}

func (e *Extractor) newWorker() (*worker, error) {
	det, err := facedetect.NewDetector(e.shapes, filepath.Join(e.cfg.ModelsDir, facedetect.CNNFile))
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	w := &worker{det: det}
	if e.cfg.Model == DlibModel {
		w.dlib, err = NewChipDescriber(e.cfg.ModelsDir)
	} else {
		w.net, err = loadONNX(e.model)
	}
	if err != nil {
		det.Close()
		return nil, err
	}
	return w, nil
}

// Close waits for running extractions and frees the models. Later calls to
// Extract fail with ErrClosed.
func (e *Extractor) Close() error {
	e.closeOnce.Do(func() {
		close(e.done)
		for i := 0; i < e.n; i++ {
			(<-e.pool).close()
		}
		e.shapes.Close()
	})
	return nil
}

// Algorithm reports the algorithm of the templates this extractor makes.
func (e *Extractor) Algorithm() templates.Algorithm { return e.alg }

// Dim is the length of the templates' vectors.
func (e *Extractor) Dim() int { return e.dim }

// Model is the model's descriptor (the zero Model for DlibModel).
func (e *Extractor) Model() Model { return e.model }

func (e *Extractor) get(ctx context.Context) (*worker, error) {
	select {
	case <-e.done:
		return nil, ErrClosed
	default:
	}
	select {
	case w := <-e.pool:
		return w, nil
	case <-e.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Extract finds the face in a JPEG or PNG photo and makes its template.
// Errors wrap templates.ErrImageUnreadable, templates.ErrUnsupportedFormat,
// templates.ErrImageTooLarge, templates.ErrNoFace or
// templates.ErrMultipleFaces when the photo is at fault.
func (e *Extractor) Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error) {
	return e.ExtractContext(context.Background(), img, opt)
}

// ExtractContext is Extract that gives up with ctx's error once ctx is
// done: during the decoding, while waiting for a worker, and between the
// detectors' passes (a pass itself, in dlib, runs to its end).
func (e *Extractor) ExtractContext(ctx context.Context, img []byte, opt templates.ExtractOptions) (templates.Face, error) {
	d, err := decodeImage(ctx, img, e.cfg.MaxPixels)
	if err != nil {
		return templates.Face{}, err
	}
	px := toRGB(d.img)
	w, err := e.get(ctx)
	if err != nil {
		return templates.Face{}, err
	}
	defer func() { e.pool <- w }()

	found, how, err := e.find(ctx, w, px)
	if err != nil {
		return templates.Face{}, err
	}
	if len(found) == 0 {
		return templates.Face{}, fmt.Errorf("%w (%s detector, %dx%d image)", templates.ErrNoFace, e.cfg.Detector, px.w, px.h)
	}
	best, err := pick(found, px.w, px.h, opt.TakeLargest)
	if err != nil {
		return templates.Face{}, err
	}
	f := found[best]
	five := fivePoints(f.points)
	if err := ctx.Err(); err != nil {
		return templates.Face{}, err
	}
	vec, err := e.describe(w, px, f, five)
	if err != nil {
		return templates.Face{}, err
	}
	bounds := image.Rect(0, 0, px.w, px.h)
	out := templates.Face{
		Box:       f.box,
		Landmarks: f.landmarks(),
		Faces:     len(found),
		Template: templates.Template{
			Modality:  templates.ModalityFace,
			Algorithm: e.alg,
			Vector:    vec,
		},
		Quality: templates.FaceQuality{
			InterEyePixels:     math.Hypot(five[0].X-five[1].X, five[0].Y-five[1].Y),
			FaceFraction:       float64(area(f.box.Intersect(bounds))) / float64(area(bounds)),
			Detector:           how,
			DetectorConfidence: f.confidence,
		},
	}
	out.Quality.Yaw, out.Quality.Pitch, out.Quality.Roll = pose(five)
	if out.Quality.Sharpness, err = faceSharpness(d.img, f.box); err != nil {
		return templates.Face{}, err
	}
	return out, nil
}

// describe aligns the face and runs the network.
func (e *Extractor) describe(w *worker, px rgbImage, f detection, five [5]point) ([]float32, error) {
	if w.dlib != nil {
		chip, err := dlibChip(px, f.points)
		if err != nil {
			return nil, err
		}
		return w.dlib.Describe(chip)
	}
	src, err := gocv.NewMatFromBytes(px.h, px.w, gocv.MatTypeCV8UC3, px.pix)
	if err != nil {
		return nil, fmt.Errorf("templates: OpenCV: %w", err)
	}
	defer src.Close()
	chip, err := alignArcFace(src, five)
	if err != nil {
		return nil, err
	}
	defer chip.Close()
	v, err := w.net.embed(chip)
	if err != nil {
		return nil, err
	}
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if !(ss > 0) || math.IsInf(ss, 0) {
		return nil, fmt.Errorf("templates: face model %s gave a zero or non-finite embedding", e.model.Name)
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
	return v, nil
}

// find runs the detectors in order of cost until one finds a face (see
// Detector), on a reduced copy of a large image, and reports the faces in
// the image's pixels and which detector found them.
func (e *Extractor) find(ctx context.Context, w *worker, px rgbImage) ([]detection, string, error) {
	search, k := px, 1.0
	if long := max(px.w, px.h); long > maxDetectSide {
		k = float64(long) / maxDetectSide
		search = px.resized(int(math.Round(float64(px.w)/k)), int(math.Round(float64(px.h)/k)))
	}
	type try struct {
		name    string
		cnn, up bool
		pad     bool
	}
	var tries []try
	switch e.cfg.Detector {
	case DetectorCNN:
		tries = []try{{name: "cnn", cnn: true}}
	default:
		tries = []try{{name: "hog"}, {name: "hog-padded", pad: true}}
		if max(search.w, search.h) <= maxDetectSide/2 {
			tries = append(tries, try{name: "hog-x2", up: true})
		}
		if e.cfg.Detector == DetectorAuto {
			tries = append(tries, try{name: "cnn", cnn: true})
		}
	}
	for _, t := range tries {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		img, dx, dy := search, 0, 0
		if t.pad {
			img, dx, dy = search.padded()
		}
		dets, err := detect(w.det, img, t.cnn, t.up)
		if err != nil {
			return nil, "", err
		}
		if len(dets) == 0 {
			continue
		}
		for i := range dets {
			dets[i] = dets[i].moved(-dx, -dy, k)
		}
		return dets, t.name, nil
	}
	return nil, "", nil
}

// moved shifts a detection by (dx, dy) and scales it by k.
func (d detection) moved(dx, dy int, k float64) detection {
	at := func(p image.Point) image.Point {
		return image.Pt(int(math.Round(float64(p.X+dx)*k)), int(math.Round(float64(p.Y+dy)*k)))
	}
	d.box = image.Rectangle{Min: at(d.box.Min), Max: at(d.box.Max)}
	for i, p := range d.points {
		d.points[i] = [2]float64{(p[0] + float64(dx)) * k, (p[1] + float64(dy)) * k}
	}
	return d
}

// pick chooses the face of interest: the only one, the largest when asked
// (gate frames), or the largest that dominates every other (Dominant,
// Central); otherwise the photo is refused with
// templates.ErrMultipleFaces.
func pick(found []detection, w, h int, takeLargest bool) (int, error) {
	if len(found) == 1 {
		return 0, nil
	}
	bounds := image.Rect(0, 0, w, h)
	visible := func(i int) float64 { return float64(area(found[i].box.Intersect(bounds))) }
	best := 0
	for i := range found {
		if visible(i) > visible(best) {
			best = i
		}
	}
	if takeLargest {
		return best, nil
	}
	cx, cy := float64(w)/2, float64(h)/2
	dist := func(r image.Rectangle) float64 {
		return math.Hypot(float64(r.Min.X+r.Max.X)/2-cx, float64(r.Min.Y+r.Max.Y)/2-cy)
	}
	ok := dist(found[best].box) <= Central*float64(min(w, h))
	for i, f := range found {
		if i != best && (visible(best) < Dominant*visible(i) || dist(f.box) <= dist(found[best].box)) {
			ok = false
		}
	}
	if !ok {
		// No "enrolment needs one" here: a search probe comes this way
		// too, and the caller (the engine) knows which it is.
		return 0, fmt.Errorf("%w: %d faces in the image and none clearly the face of interest (the largest, %.1fx the area of any other, nearest the centre)",
			templates.ErrMultipleFaces, len(found), Dominant)
	}
	return best, nil
}
