package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"strings"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/facerecord"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Sample is one biometric sample of a request: give exactly one of its
// fields.
type Sample struct {
	// FaceImage is a photo (JPEG or PNG) holding one face (or, with
	// TakeLargestFace, the largest of several).
	FaceImage []byte
	// Face is a face found already, e.g. a gate's best shot.
	Face *templates.Face
	// Template is an encoded templates.Template, face or finger.
	Template []byte
	Finger   *FingerSample
	// FaceRecord is a passport chip's EF.DG2, or a bare ISO/IEC 19794-5
	// or 39794-5 face record: its first face's image (JPEG or JPEG 2000)
	// is used as FaceImage would be.
	FaceRecord []byte
}

// FaceRecordInfo describes the face record a sample's photo came from.
type FaceRecordInfo struct {
	// Container is "DG2" or "record" (a bare face record).
	Container string
	// Format is the record's format, e.g. "ISO/IEC 19794-5:2005".
	Format string
	// Faces is how many faces the record holds; the first was used.
	Faces int
	// ImageType is the image's encoding ("JPEG", "JPEG 2000") and Width,
	// Height its size, as the image itself declares them.
	ImageType     string
	Width, Height int
	// FaceImageType is the record's kind of face image ("full frontal"…).
	FaceImageType string
	// Quality is the record's declared image quality (0: none).
	Quality int
}

// withRecordImage turns a FaceRecord sample into the FaceImage sample of
// its first face. Other samples pass unchanged with a nil info. The image
// is copied: it must not alias the request, which the store keeps.
func withRecordImage(sm Sample, what string) (Sample, *FaceRecordInfo, error) {
	if sm.FaceRecord == nil {
		return sm, nil, nil
	}
	if sm.FaceImage != nil || sm.Face != nil || sm.Template != nil || sm.Finger != nil {
		return sm, nil, invalid("%s: give one of a face image, a face record, a face, a template or a finger", what)
	}
	if len(sm.FaceRecord) == 0 {
		return sm, nil, invalid("%s: the face record is empty", what)
	}
	faces, err := facerecord.Parse(sm.FaceRecord)
	if err != nil {
		return sm, nil, invalid("%s: %v", what, err)
	}
	f := faces[0]
	info := &FaceRecordInfo{
		Container: "record", Format: f.Format.String(), Faces: len(faces),
		ImageType: f.ImageType.String(), Width: f.Width, Height: f.Height,
		FaceImageType: f.FaceImageType.String(), Quality: f.Quality,
	}
	if sm.FaceRecord[0] == 0x75 {
		info.Container = "DG2"
	}
	return Sample{FaceImage: bytes.Clone(f.Image)}, info, nil
}

// FingerSample is one finger: an image, a minutiae record (ISO/IEC
// 19794-2, ANSI INCITS 378) or an encoded finger template; give one.
type FingerSample struct {
	// Position is the finger's (minutiae.PositionUnknown: not said).
	Position minutiae.Position
	Image    []byte
	// Format of Image ("png", "tiff", "bmp", "jpeg", "wsq"; empty: any)
	// and its resolution (0: as the file declares, else the engine's
	// default).
	Format   string
	DPI      int
	Record   []byte
	Template []byte
}

// FaceQuality is what the engine measured of a face sample.
type FaceQuality struct {
	templates.FaceQuality
	Box        image.Rectangle
	FacesFound int
}

// FingerQuality is what the engine measured of a finger sample.
type FingerQuality struct {
	Position                 minutiae.Position
	Quality                  int // 0-100 (NFIQ-like; from the image or the record)
	Minutiae, UsableMinutiae int
	Width, Height, DPI       int
	Format                   string // the sample's format: an image format, a record format or "template"
}

// sample is a request's sample turned into a template: a face (with its
// quality when it came from a photo) or a finger (with its prepared
// cylinders and its quality).
type sample struct {
	t     templates.Template
	faceQ *FaceQuality
	// Faces only: t's algorithm; the photo it came from (nil for a face
	// or template given); for a probe photo, its templates under the
	// other loaded algorithms the gallery holds (faces.go).
	fa     *faceAlgo
	img    []byte
	others []faceProbe
	// The face record the photo came from, if any.
	record *FaceRecordInfo
	// Fingers only.
	ft      *matcher.FingerTemplate
	fingerQ *FingerQuality
}

func faceQuality(f templates.Face) *FaceQuality {
	return &FaceQuality{FaceQuality: f.Quality, Box: f.Box, FacesFound: f.Faces}
}

// minEnrolCylinders is the fewest usable minutiae an enrolled finger must
// have: the matcher scores a template with fewer than two as matching
// nothing, so storing one would only hide a failed capture.
const minEnrolCylinders = 2

// fingerFormats are the image format hints FingerSample.format accepts, as
// fpimage.Decode names them.
var fingerFormats = []string{"png", "tiff", "bmp", "jpeg", "wsq"}

// template turns a sample into a template. enrol applies the enrolment
// checks (the finger quality floor).
func (s *Engine) template(ctx context.Context, sm Sample, takeLargest, enrol bool, what string) (sample, error) {
	if sm.FaceRecord != nil {
		img, info, err := withRecordImage(sm, what)
		if err != nil {
			return sample{}, err
		}
		x, err := s.template(ctx, img, takeLargest, enrol, what)
		x.record = info
		return x, err
	}
	given := 0
	for _, b := range []bool{sm.FaceImage != nil, sm.Face != nil, sm.Template != nil, sm.Finger != nil} {
		if b {
			given++
		}
	}
	if given > 1 {
		return sample{}, invalid("%s: give one of a face image, a face, a template or a finger", what)
	}
	switch {
	case sm.FaceImage != nil:
		x, err := s.extractWith(ctx, s.def, sm.FaceImage, takeLargest, what)
		if enrol {
			return x, severalFaces(err, "enrolment needs a photo of one face")
		}
		// A probe: also under every other loaded algorithm the gallery
		// holds templates of. One that finds no face leaves its
		// algorithm out of the search rather than failing the probe;
		// when the default one finds none, the first other that does
		// leads (its quality is reported).
		defErr := err
		found := err == nil
		for _, fa := range s.algos.all() {
			if fa == s.def || fa.ex == nil || fa.index.Len() == 0 {
				continue
			}
			y, err := s.extractWith(ctx, fa, sm.FaceImage, takeLargest, what)
			switch {
			case err != nil:
				s.log.Debug().Err(err).Str("algorithm", fa.alg.String()).Msg("probe photo not extracted under a second algorithm")
			case !found:
				x, found = y, true
			default:
				x.others = append(x.others, faceProbe{fa, y.t})
			}
		}
		if !found {
			need := "a " + what + " photo needs one face"
			if what == "probe" {
				need += ", or take_largest_face to use the largest"
			}
			return sample{}, severalFaces(defErr, need)
		}
		return x, nil
	case sm.Face != nil:
		// A face the caller found is the caller's input: its bad values
		// are refused as such, not blamed on an extractor (faceSample).
		if err := sm.Face.Template.Comparable(); err != nil {
			return sample{}, kindOf(what, err)
		}
		fa, err := s.algoFor(sm.Face.Template, false)
		if err != nil {
			return sample{}, kindOf(what, err)
		}
		return s.faceSample(*sm.Face, fa, what)
	case sm.Template != nil:
		var t templates.Template
		if err := t.UnmarshalBinary(sm.Template); err != nil {
			return sample{}, kindOf(what, fmt.Errorf("%w: %w", ErrInvalid, err))
		}
		if err := t.Comparable(); err != nil {
			return sample{}, kindOf(what, err)
		}
		if t.Modality == templates.ModalityFinger {
			return s.fingerView(*t.Finger, minutiae.PositionUnknown, "template", enrol, what)
		}
		fa, err := s.algoFor(t, enrol && s.templatesOnly)
		if err != nil {
			return sample{}, kindOf(what, err)
		}
		if enrol && !s.templatesOnly && fa.ex == nil {
			return sample{}, fmt.Errorf("%s: %w: a face template of %s, which this server does not load (it enrols %s)", what, ErrIncompatible, t.Algorithm, s.def.alg)
		}
		return sample{t: t, fa: fa}, nil
	case sm.Finger != nil:
		return s.finger(ctx, *sm.Finger, enrol, what)
	default:
		return sample{}, invalid("%s: no image, template or finger given", what)
	}
}

// severalFaces adds to a photo refused for holding several faces what the
// photo is for (the extractor cannot tell an enrolment from a search).
func severalFaces(err error, need string) error {
	if err == nil || !errors.Is(err, templates.ErrMultipleFaces) {
		return err
	}
	return fmt.Errorf("%w; %s", err, need)
}

// extractWith extracts a photo with one algorithm's extractor.
func (s *Engine) extractWith(ctx context.Context, fa *faceAlgo, img []byte, takeLargest bool, what string) (sample, error) {
	if fa.ex == nil {
		if fa == s.def {
			_, err := NoFaces{}.Extract(img, templates.ExtractOptions{})
			return sample{}, kindOf(what, err)
		}
		return sample{}, fmt.Errorf("%s: %w: no extractor of %s is loaded", what, ErrIncompatible, fa.alg)
	}
	release, err := s.budget.takeFace(ctx, img)
	if err != nil {
		return sample{}, kindOf(what, err)
	}
	opt := templates.ExtractOptions{TakeLargest: takeLargest}
	var face templates.Face
	if cx, ok := fa.ex.(ContextExtractor); ok {
		face, err = cx.ExtractContext(ctx, img, opt)
	} else {
		face, err = fa.ex.Extract(img, opt)
	}
	release()
	if err != nil {
		return sample{}, kindOf(what, err)
	}
	x, err := s.faceSample(face, fa, what)
	x.img = img
	return x, err
}

// faceSample checks a face an extractor made (or a caller found).
func (s *Engine) faceSample(f templates.Face, fa *faceAlgo, what string) (sample, error) {
	if err := f.Template.Comparable(); err != nil {
		return sample{}, kindOf(what, fmt.Errorf("%w: the face extractor's template: %w", ErrInternal, err))
	}
	if f.Template.Algorithm != fa.alg || len(f.Template.Vector) != fa.dim {
		return sample{}, fmt.Errorf("%s: %w: the extractor of %s made a %d-d template of %s", what, ErrInternal, fa.alg, len(f.Template.Vector), f.Template.Algorithm)
	}
	return sample{t: f.Template, faceQ: faceQuality(f), fa: fa}, nil
}

// faces is a face sample's templates, its own first.
func (x *sample) faces() []faceProbe {
	return append([]faceProbe{{x.fa, x.t}}, x.others...)
}

// finger turns a fingerprint sample into a finger template.
func (s *Engine) finger(ctx context.Context, fs FingerSample, enrol bool, what string) (sample, error) {
	pos := fs.Position
	if pos > minutiae.LeftLittle {
		return sample{}, invalid("%s: position %d outside 0..10", what, pos)
	}
	what = fmt.Sprintf("%s (%s)", what, pos)
	switch {
	case fs.Image != nil && fs.Record == nil && fs.Template == nil:
		return s.fingerImage(ctx, fs, enrol, what)
	case fs.Record != nil && fs.Image == nil && fs.Template == nil:
		rec, err := minutiae.Parse(fs.Record)
		if err != nil {
			return sample{}, kindOf(what+": record", fmt.Errorf("%w: %w", ErrInvalid, err))
		}
		v, err := pickView(rec, pos)
		if err != nil {
			return sample{}, invalid("%s: record: %v", what, err)
		}
		return s.fingerView(v, pos, recordFormat(rec.Format), enrol, what)
	case fs.Template != nil && fs.Image == nil && fs.Record == nil:
		var t templates.Template
		if err := t.UnmarshalBinary(fs.Template); err != nil {
			return sample{}, kindOf(what, fmt.Errorf("%w: %w", ErrInvalid, err))
		}
		if t.Modality != templates.ModalityFinger {
			return sample{}, invalid("%s: a %s template is not a finger", what, t.Modality)
		}
		if err := t.Comparable(); err != nil {
			return sample{}, kindOf(what, err)
		}
		return s.fingerView(*t.Finger, pos, "template", enrol, what)
	case fs.Image == nil && fs.Record == nil && fs.Template == nil:
		return sample{}, invalid("%s: no image, record or template given", what)
	default:
		return sample{}, invalid("%s: give one of an image, a record or a template", what)
	}
}

func recordFormat(f minutiae.Format) string {
	switch f {
	case minutiae.FormatISO2005:
		return "iso19794-2:2005"
	case minutiae.FormatANSI2004:
		return "ansi378-2004"
	case minutiae.FormatANSI2009:
		return "ansi378-2009"
	}
	return f.String()
}

// pickView chooses the view of a record a sample means: the only one, or
// the one of the requested position (the best by quality when the record
// holds several impressions of it).
func pickView(rec minutiae.Record, pos minutiae.Position) (minutiae.View, error) {
	if pos == minutiae.PositionUnknown {
		if len(rec.Views) != 1 {
			return minutiae.View{}, fmt.Errorf("%d finger views: give the finger position to choose one", len(rec.Views))
		}
		return rec.Views[0], nil
	}
	best := -1
	var have []string
	for i, v := range rec.Views {
		have = append(have, v.Position.String())
		if v.Position != pos && !(len(rec.Views) == 1 && v.Position == minutiae.PositionUnknown) {
			continue
		}
		if best < 0 || v.Quality > rec.Views[best].Quality {
			best = i
		}
	}
	if best < 0 {
		return minutiae.View{}, fmt.Errorf("finger position: no view of %s (the record has %s)", pos, strings.Join(have, ", "))
	}
	return rec.Views[best], nil
}

// fingerImage extracts the minutiae of a fingerprint image.
func (s *Engine) fingerImage(ctx context.Context, fs FingerSample, enrol bool, what string) (sample, error) {
	b, pos := fs.Image, fs.Position
	hint := strings.ToLower(fs.Format)
	if hint == "tif" {
		hint = "tiff"
	} else if hint == "jpg" {
		hint = "jpeg"
	}
	if hint != "" && !slices.Contains(fingerFormats, hint) {
		return sample{}, invalid("%s: format %q is not one of %s", what, fs.Format, strings.Join(fingerFormats, ", "))
	}
	dpi := fs.DPI
	if dpi != 0 && !fpimage.PlausibleDPI(dpi) {
		return sample{}, invalid("%s: dpi %d outside %d..%d", what, dpi, fpimage.MinDPI, fpimage.MaxDPI)
	}
	release, err := s.budget.takeFinger(ctx, b)
	if err != nil {
		return sample{}, kindOf(what, err)
	}
	defer release()
	img, info, err := fpimage.DecodeContext(ctx, b)
	if err != nil {
		return sample{}, kindOf(what, err)
	}
	if hint != "" && hint != info.Format {
		return sample{}, invalid("%s: format: the image is %s, not %s", what, info.Format, hint)
	}
	if dpi == 0 {
		dpi = info.DPI
	}
	if dpi == 0 {
		dpi = s.fingerDPI
	}
	ex := s.probeFingers
	if enrol {
		ex = s.enrolFingers
	}
	res, err := ex.ExtractContext(ctx, img, dpi)
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return sample{}, err
	case errors.Is(err, finger.ErrLowQuality), errors.Is(err, finger.ErrTooSmall), errors.Is(err, finger.ErrNoFingerprint):
		// The error gives the image's quality and the floor.
		return sample{}, kindOf(what, err)
	case err != nil:
		return sample{}, kindOf(what+": extracting minutiae", fmt.Errorf("%w: %w", ErrInternal, err))
	}
	v := res.View
	v.Position = pos
	v.Quality = uint8(min(max(res.Quality, 0), 100))
	sm, err := s.fingerView(v, pos, info.Format, enrol, what)
	if err != nil {
		return sm, err
	}
	sm.fingerQ.Quality = res.Quality
	return sm, nil
}

// fingerView makes the template of a finger view: as the store will hold it
// (so that what is searched now is what is searched after a restart), with
// its cylinders prepared.
func (s *Engine) fingerView(v minutiae.View, pos minutiae.Position, format string, enrol bool, what string) (sample, error) {
	switch {
	case pos == minutiae.PositionUnknown:
	case v.Position == minutiae.PositionUnknown:
		v.Position = pos
	case v.Position != pos:
		return sample{}, invalid("%s: finger position: the sample says %s, its minutiae say %s", what, pos, v.Position)
	}
	if v.DPI <= 0 {
		// Records may leave the resolution out (0); scanners for
		// identity documents are 500 dpi.
		v.DPI = s.fingerDPI
	}
	enc, err := templates.NewFingerTemplate(v).MarshalBinary()
	if err != nil {
		return sample{}, invalid("%s: %v", what, err)
	}
	var t templates.Template
	if err := t.UnmarshalBinary(enc); err != nil {
		return sample{}, invalid("%s: %v", what, err)
	}
	ft, err := matcher.PrepareFinger(*t.Finger)
	if err != nil {
		return sample{}, invalid("%s: %v", what, err)
	}
	if enrol && ft.Cylinders() < minEnrolCylinders {
		return sample{}, invalid("%s: %d usable minutiae (of %d), at least %d needed to enrol",
			what, ft.Cylinders(), len(t.Finger.Minutiae), minEnrolCylinders)
	}
	q := &FingerQuality{
		Position:       t.Finger.Position,
		Quality:        int(t.Finger.Quality),
		Minutiae:       len(t.Finger.Minutiae),
		UsableMinutiae: ft.Cylinders(),
		Width:          int(t.Finger.Width),
		Height:         int(t.Finger.Height),
		DPI:            int(t.Finger.DPI),
		Format:         format,
	}
	return sample{t: t, ft: ft, fingerQ: q}, nil
}

// Probe is the probe of an Identify or Verify: a sample (a face, or a
// finger), more fingers, or both.
type Probe struct {
	Sample  *Sample
	Fingers []FingerSample
	// TakeLargestFace takes the largest face of a photo holding several (a
	// gate frame) instead of refusing it.
	TakeLargestFace bool
	// NIST is an ANSI/NIST-ITL transaction whose first face (unless Sample
	// is given) and fingers join the probe (Identify only).
	NIST []byte
}

// probe is a Probe turned into templates.
type probe struct {
	face    *sample
	fingers []sample
}

// probe gathers a request's probe sample and fingers: at most one face, at
// most MaxFingerSamples fingers of distinct positions (one of unknown
// position at most).
func (s *Engine) probe(ctx context.Context, in Probe, what string) (probe, error) {
	var p probe
	fingers := in.Fingers
	if sm := in.Sample; sm != nil && (sm.FaceImage != nil || sm.Face != nil || sm.Template != nil || sm.Finger != nil || sm.FaceRecord != nil) {
		x, err := s.template(ctx, *sm, in.TakeLargestFace, false, what)
		if err != nil {
			return p, err
		}
		if x.t.Modality == templates.ModalityFinger {
			p.fingers = append(p.fingers, x)
		} else {
			p.face = &x
		}
	}
	if n := len(p.fingers) + len(fingers); n > MaxFingerSamples {
		return p, invalid("%s: %d fingers, at most %d", what, n, MaxFingerSamples)
	}
	for i, fs := range fingers {
		x, err := s.finger(ctx, fs, false, fmt.Sprintf("%s finger %d", what, i+1))
		if err != nil {
			return p, err
		}
		p.fingers = append(p.fingers, x)
	}
	seen := map[minutiae.Position]bool{}
	for _, f := range p.fingers {
		pos := f.t.Position()
		if seen[pos] {
			return p, invalid("%s: two fingers of position %s: give one impression per finger", what, pos)
		}
		seen[pos] = true
	}
	if p.face == nil && len(p.fingers) == 0 {
		return p, invalid("%s: give a face or at least one finger", what)
	}
	return p, nil
}

func (p probe) fingerQuality() []FingerQuality {
	var q []FingerQuality
	for _, f := range p.fingers {
		q = append(q, *f.fingerQ)
	}
	return q
}
