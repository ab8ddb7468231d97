package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/fpimage"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// sample is a request's sample turned into a template: a face (with its
// quality when it came from a photo) or a finger (with its prepared
// cylinders and its quality).
type sample struct {
	t     templates.Template
	faceQ *pb.FaceQuality
	// Fingers only.
	ft      *matcher.FingerTemplate
	fingerQ *pb.FingerQuality
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
func (s *Service) template(sm *pb.Sample, takeLargest, enrol bool, what string) (sample, error) {
	switch k := sm.GetKind().(type) {
	case *pb.Sample_FaceImage:
		face, err := s.faces.Extract(k.FaceImage, templates.ExtractOptions{TakeLargest: takeLargest})
		if err != nil {
			return sample{}, imageStatus(what, err)
		}
		return sample{t: face.Template, faceQ: qualityProto(face)}, nil
	case *pb.Sample_Template:
		var t templates.Template
		if err := t.UnmarshalBinary(k.Template); err != nil {
			return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
		}
		if err := s.compatible(t); err != nil {
			return sample{}, status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
		}
		if t.Modality == templates.ModalityFinger {
			return s.fingerView(*t.Finger, minutiae.PositionUnknown, "template", enrol, what)
		}
		return sample{t: t}, nil
	case *pb.Sample_Finger:
		return s.finger(k.Finger, enrol, what)
	default:
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: no image, template or finger given", what)
	}
}

// finger turns a fingerprint sample into a finger template.
func (s *Service) finger(fs *pb.FingerSample, enrol bool, what string) (sample, error) {
	pos := minutiae.Position(fs.GetPosition())
	if fs.GetPosition() < 0 || pos > minutiae.LeftLittle {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: position %d outside 0..10", what, fs.GetPosition())
	}
	what = fmt.Sprintf("%s (%s)", what, pos)
	switch k := fs.GetKind().(type) {
	case *pb.FingerSample_Image:
		return s.fingerImage(k.Image, fs, pos, enrol, what)
	case *pb.FingerSample_Record:
		rec, err := minutiae.Parse(k.Record)
		if err != nil {
			return sample{}, status.Errorf(codes.InvalidArgument, "%s: record: %v", what, err)
		}
		v, err := pickView(rec, pos)
		if err != nil {
			return sample{}, status.Errorf(codes.InvalidArgument, "%s: record: %v", what, err)
		}
		return s.fingerView(v, pos, recordFormat(rec.Format), enrol, what)
	case *pb.FingerSample_Template:
		var t templates.Template
		if err := t.UnmarshalBinary(k.Template); err != nil {
			return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
		}
		if t.Modality != templates.ModalityFinger {
			return sample{}, status.Errorf(codes.InvalidArgument, "%s: a %s template is not a finger", what, t.Modality)
		}
		if err := s.compatible(t); err != nil {
			return sample{}, status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
		}
		return s.fingerView(*t.Finger, pos, "template", enrol, what)
	default:
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: no image, record or template given", what)
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
func (s *Service) fingerImage(b []byte, fs *pb.FingerSample, pos minutiae.Position, enrol bool, what string) (sample, error) {
	hint := strings.ToLower(fs.GetFormat())
	if hint == "tif" {
		hint = "tiff"
	} else if hint == "jpg" {
		hint = "jpeg"
	}
	if hint != "" && !slices.Contains(fingerFormats, hint) {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: format %q is not one of %s", what, fs.GetFormat(), strings.Join(fingerFormats, ", "))
	}
	dpi := int(fs.GetDpi())
	if dpi != 0 && !fpimage.PlausibleDPI(dpi) {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: dpi %d outside %d..%d", what, dpi, fpimage.MinDPI, fpimage.MaxDPI)
	}
	img, info, err := fpimage.Decode(b)
	if err != nil {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	if hint != "" && hint != info.Format {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: format: the image is %s, not %s", what, info.Format, hint)
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
	res, err := ex.Extract(img, dpi)
	switch {
	case errors.Is(err, finger.ErrLowQuality):
		// The error gives the image's quality and the floor.
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	case errors.Is(err, finger.ErrTooSmall), errors.Is(err, finger.ErrNoFingerprint):
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	case err != nil:
		return sample{}, status.Errorf(codes.Internal, "%s: extracting minutiae: %v", what, err)
	}
	v := res.View
	v.Position = pos
	v.Quality = uint8(min(max(res.Quality, 0), 100))
	sm, err := s.fingerView(v, pos, info.Format, enrol, what)
	if err != nil {
		return sm, err
	}
	sm.fingerQ.Quality = int32(res.Quality)
	return sm, nil
}

// fingerView makes the template of a finger view: as the store will hold it
// (so that what is searched now is what is searched after a restart), with
// its cylinders prepared.
func (s *Service) fingerView(v minutiae.View, pos minutiae.Position, format string, enrol bool, what string) (sample, error) {
	switch {
	case pos == minutiae.PositionUnknown:
	case v.Position == minutiae.PositionUnknown:
		v.Position = pos
	case v.Position != pos:
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: finger position: the sample says %s, its minutiae say %s", what, pos, v.Position)
	}
	if v.DPI <= 0 {
		// Records may leave the resolution out (0); scanners for
		// identity documents are 500 dpi.
		v.DPI = s.fingerDPI
	}
	enc, err := templates.NewFingerTemplate(v).MarshalBinary()
	if err != nil {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	var t templates.Template
	if err := t.UnmarshalBinary(enc); err != nil {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	ft, err := matcher.PrepareFinger(*t.Finger)
	if err != nil {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	if enrol && ft.Cylinders() < minEnrolCylinders {
		return sample{}, status.Errorf(codes.InvalidArgument, "%s: %d usable minutiae (of %d), at least %d needed to enrol",
			what, ft.Cylinders(), len(t.Finger.Minutiae), minEnrolCylinders)
	}
	q := &pb.FingerQuality{
		Position:       pb.FingerPosition(t.Finger.Position),
		Quality:        int32(t.Finger.Quality),
		Minutiae:       int32(len(t.Finger.Minutiae)),
		UsableMinutiae: int32(ft.Cylinders()),
		Width:          int32(t.Finger.Width),
		Height:         int32(t.Finger.Height),
		Dpi:            int32(t.Finger.DPI),
		Format:         format,
	}
	return sample{t: t, ft: ft, fingerQ: q}, nil
}

// probe is the probe of an Identify or Verify: a face, fingers, or both.
type probe struct {
	face    *sample
	fingers []sample
}

// probe gathers a request's probe sample and fingers: at most one face, at
// most MaxFingerSamples fingers of distinct positions (one of unknown
// position at most).
func (s *Service) probe(sm *pb.Sample, fingers []*pb.FingerSample, takeLargest bool, what string) (probe, error) {
	var p probe
	if sm != nil && sm.GetKind() != nil {
		x, err := s.template(sm, takeLargest, false, what)
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
		return p, status.Errorf(codes.InvalidArgument, "%s: %d fingers, at most %d", what, n, MaxFingerSamples)
	}
	for i, fs := range fingers {
		x, err := s.finger(fs, false, fmt.Sprintf("%s finger %d", what, i+1))
		if err != nil {
			return p, err
		}
		p.fingers = append(p.fingers, x)
	}
	seen := map[minutiae.Position]bool{}
	for _, f := range p.fingers {
		pos := f.t.Position()
		if seen[pos] {
			return p, status.Errorf(codes.InvalidArgument, "%s: two fingers of position %s: give one impression per finger", what, pos)
		}
		seen[pos] = true
	}
	if p.face == nil && len(p.fingers) == 0 {
		return p, status.Errorf(codes.InvalidArgument, "%s: give a face or at least one finger", what)
	}
	return p, nil
}

func (p probe) fingerQuality() []*pb.FingerQuality {
	var q []*pb.FingerQuality
	for _, f := range p.fingers {
		q = append(q, f.fingerQ)
	}
	return q
}
