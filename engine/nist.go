package engine

// ANSI/NIST-ITL transactions in and out: the samples a tenprint or face
// transaction holds, and a subject's kept samples written as one.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates/an2k"
	"github.com/bordermatch/bordermatch/templates/facerecord"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// NISTUse is what a request took from an ANSI/NIST-ITL transaction.
type NISTUse struct {
	// Domain is 1.013 DOM ("INT-I 4.22"), TOT 1.004.
	Domain, TOT string
	// Faces and Fingers are the samples taken.
	Faces, Fingers int
	// Skipped names each record not used and why.
	Skipped []string
	// Attributes are Type-2's fields read through the domain's profile.
	Attributes map[string]string
}

// nistContent is a transaction's samples.
type nistContent struct {
	use     NISTUse
	faces   []Sample
	fingers []FingerSample
}

// profileOf returns the profile of a transaction's domain, nil when none
// here describes it.
func profileOf(t *an2k.Transaction) *an2k.Profile {
	name, _ := t.Domain()
	name = strings.TrimSpace(name)
	for _, pr := range nistProfiles() {
		if strings.EqualFold(pr.Domain.Name, name) {
			return pr
		}
	}
	return nil
}

// nistProfiles are the domain profiles an2k embeds, parsed once rather
// than for every transaction.
var nistProfiles = sync.OnceValue(func() []*an2k.Profile {
	var out []*an2k.Profile
	for _, name := range an2k.Profiles() {
		if pr, err := an2k.LoadProfile(name); err == nil {
			out = append(out, pr)
		}
	}
	return out
})

// readNIST takes the samples of an ANSI/NIST-ITL transaction: every face
// (Type-10 FACE), one finger per position (the first record of it: a
// tenprint's rolled impressions come before its plain ones), from images
// (Types 4, 14) or, for a finger without an image, Type-9 INCITS 378
// minutiae. What cannot be used is named in use.Skipped rather than
// refused: a partner's tenprint is not rejected for its latent or palm.
func readNIST(b []byte, what string) (nistContent, error) {
	var c nistContent
	t, err := an2k.ParseAny(b)
	if err != nil {
		return c, invalid("%s: %v", what, err)
	}
	name, version := t.Domain()
	c.use.Domain = strings.TrimSpace(name + " " + version)
	c.use.TOT = t.TOT()
	pr := profileOf(t)
	// Records are numbered as an2k's errors number them: Type-1 is
	// record 0. An an2k error about the record already names it.
	skip := func(i int, why string, args ...any) {
		c.use.Skipped = append(c.use.Skipped, fmt.Sprintf("record %d (Type-%d): %s", i, t.Records[i].Type, fmt.Sprintf(why, args...)))
	}
	skipErr := func(i int, err error) {
		var ae *an2k.Error
		if errors.As(err, &ae) && ae.Record == i {
			c.use.Skipped = append(c.use.Skipped, strings.TrimPrefix(err.Error(), "an2k: "))
			return
		}
		skip(i, "%v", err)
	}
	have := map[minutiae.Position]bool{}
	var type9 []int
	for i := range t.Records {
		r := &t.Records[i]
		switch r.Type {
		case 1:
		case 2:
			if pr != nil {
				c.use.Attributes = pr.Subject(r)
			}
		case 9:
			type9 = append(type9, i)
		case 10:
			im, err := t.Image(i)
			if err != nil {
				skipErr(i, err)
				continue
			}
			if im.ImageType != "" && !strings.EqualFold(im.ImageType, "FACE") {
				skip(i, "a %s image, not a face", im.ImageType)
				continue
			}
			img, err := portable(im, "jpeg", "jpeg2000", "png")
			if err != nil {
				skipErr(i, err)
				continue
			}
			if len(c.faces) == MaxSamples {
				skip(i, "more than %d faces", MaxSamples)
				continue
			}
			c.faces = append(c.faces, Sample{FaceImage: img})
		case 4, 14:
			im, err := t.Image(i)
			if err != nil {
				skipErr(i, err)
				continue
			}
			pos := minutiae.PositionUnknown
			if len(im.Positions) > 0 {
				pos = minutiae.Position(im.Positions[0])
			}
			switch {
			case pos < minutiae.PositionUnknown || pos > minutiae.LeftLittle:
				skip(i, "finger position %d is a slap or plain thumbs (not segmented here)", pos)
				continue
			case have[pos]:
				skip(i, "a second image of finger %s", pos)
				continue
			case len(c.fingers) == MaxFingerSamples:
				skip(i, "more than %d fingers", MaxFingerSamples)
				continue
			}
			img, err := portable(im, "wsq", "jpeg", "png")
			if err != nil {
				skipErr(i, err)
				continue
			}
			format := im.Compression
			if format == "none" {
				format = "png"
			}
			c.fingers = append(c.fingers, FingerSample{Position: pos, Image: img, Format: format, DPI: im.PPI})
			have[pos] = true
		case 13:
			skip(i, "latent images are not searched")
		case 15:
			skip(i, "palm prints are not searched")
		case 17:
			skip(i, "iris images are not searched")
		default:
			skip(i, "not a biometric record used here")
		}
	}
	// Minutiae stand in for a finger only when its image is not there.
	for _, i := range type9 {
		rec, err := t.Minutiae(i)
		if err != nil {
			skipErr(i, err)
			continue
		}
		pos := minutiae.PositionUnknown
		if len(rec.Views) > 0 {
			pos = rec.Views[0].Position
		}
		switch {
		case have[pos]:
			skip(i, "minutiae of finger %s, which has an image", pos)
			continue
		case len(c.fingers) == MaxFingerSamples:
			skip(i, "more than %d fingers", MaxFingerSamples)
			continue
		}
		enc, err := rec.Marshal()
		if err != nil {
			skip(i, "minutiae: %v", err)
			continue
		}
		c.fingers = append(c.fingers, FingerSample{Position: pos, Record: enc})
		have[pos] = true
	}
	c.use.Faces, c.use.Fingers = len(c.faces), len(c.fingers)
	if c.use.Faces+c.use.Fingers == 0 {
		return c, invalid("%s: no face or finger the engine can use (%s)", what, strings.Join(c.use.Skipped, "; "))
	}
	return c, nil
}

// portable returns an image's bytes in a format the extractors read:
// as stored when its compression is one of keep, else (uncompressed)
// re-encoded as PNG.
func portable(im *an2k.Image, keep ...string) ([]byte, error) {
	if slices.Contains(keep, im.Compression) {
		return bytes.Clone(im.Data), nil
	}
	if im.Compression != "none" {
		return nil, fmt.Errorf("%s images are not decoded here", im.Compression)
	}
	img, err := im.Decode()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// withNIST adds a transaction's samples to an enrolment: its faces and
// fingers after the request's, and Type-2's name and attributes where
// the request has none.
func withNIST(req EnrollRequest) (EnrollRequest, *NISTUse, error) {
	if req.NIST == nil {
		return req, nil, nil
	}
	c, err := readNIST(req.NIST, "nist_transaction")
	if err != nil {
		return req, nil, err
	}
	req.NIST = nil
	req.Samples = slices.Clone(req.Samples)
	req.Samples = append(req.Samples, c.faces...)
	for i := range c.fingers {
		req.Samples = append(req.Samples, Sample{Finger: &c.fingers[i]})
	}
	attrs := maps.Clone(c.use.Attributes)
	if req.Name == "" {
		req.Name = attrs["name"]
	}
	delete(attrs, "name")
	delete(attrs, "system") // INT-I's version of itself, not the subject's
	md := maps.Clone(req.Metadata)
	for k, v := range attrs {
		if _, ok := md[k]; ok || v == "" {
			continue
		}
		if md == nil {
			md = map[string]string{}
		}
		md[k] = v
	}
	req.Metadata = md
	return req, &c.use, nil
}

// probeWithNIST adds a transaction's first face (unless the probe has a
// sample) and its fingers to a probe.
func probeWithNIST(in Probe) (Probe, *NISTUse, error) {
	if in.NIST == nil {
		return in, nil, nil
	}
	c, err := readNIST(in.NIST, "nist_transaction")
	if err != nil {
		return in, nil, err
	}
	in.NIST = nil
	if len(c.faces) > 0 && in.Sample == nil {
		in.Sample = &c.faces[0]
	} else if len(c.faces) > 0 {
		c.use.Skipped = append(c.use.Skipped, "the faces: the request's probe sample is searched instead")
		c.use.Faces = 0
	}
	if len(c.faces) > 1 && c.use.Faces > 0 {
		c.use.Skipped = append(c.use.Skipped, fmt.Sprintf("%d more faces: one face is searched", len(c.faces)-1))
		c.use.Faces = 1
	}
	in.Fingers = append(slices.Clone(in.Fingers), c.fingers...)
	return in, &c.use, nil
}

// ExportOptions say how to write a subject as an ANSI/NIST-ITL transaction.
type ExportOptions struct {
	// Profile is the domain ("int-i" when empty); TOT its type of
	// transaction ("CAR" when empty).
	Profile, TOT string
	Originator   string
	Destination  string
}

// Export is a subject written as a transaction.
type Export struct {
	Data []byte
	// Records counts the records written by type.
	Records map[int]int
	// LeftOut names the subject's metadata the profile has no field for.
	LeftOut []string
}

// ExportNIST writes a subject's kept samples and descriptive data as an
// ANSI/NIST-ITL transaction: Type-2 from its name and metadata through
// the profile, a Type-10 per photo, a Type-14 per fingerprint image and
// Type-9 minutiae per minutiae record.
func (s *Engine) ExportNIST(ctx context.Context, id string, opt ExportOptions) (Export, error) {
	var out Export
	if opt.Profile == "" {
		opt.Profile = "int-i"
	}
	if opt.TOT == "" {
		opt.TOT = "CAR"
	}
	pr, err := an2k.LoadProfile(opt.Profile)
	if err != nil {
		return out, invalid("profile: %v", err)
	}
	sub, err := s.Get(ctx, id)
	if err != nil {
		return out, err
	}
	sms, err := s.store.Samples(id)
	if err != nil {
		return out, kindOf("export", err)
	}
	if len(sms) == 0 {
		return out, fmt.Errorf("%w: subject %q has no kept sample to export (enrolled from templates only)", ErrIncompatible, id)
	}
	t, err := an2k.NewTransaction(pr, opt.TOT, an2k.Header{Originator: opt.Originator, Destination: opt.Destination, TCN: id})
	if err != nil {
		return out, invalid("export: %v", err)
	}
	known := map[string]bool{}
	for _, f := range pr.Fields {
		known[f.Attribute] = true
	}
	attrs := map[string]string{}
	if sub.Name != "" {
		attrs["name"] = sub.Name
	}
	if known["reference"] {
		attrs["reference"] = id
	}
	for k, v := range sub.Metadata {
		if known[k] {
			attrs[k] = v
		} else {
			out.LeftOut = append(out.LeftOut, k)
		}
	}
	sort.Strings(out.LeftOut)
	t2, err := pr.Type2(attrs)
	if err != nil {
		return out, fmt.Errorf("%w: export as %s: %v", ErrIncompatible, pr.Name, err)
	}
	t.Add(t2)
	for i, sm := range sms {
		if err := addKept(t, sm); err != nil {
			return out, fmt.Errorf("%w: export: kept sample %d (%s): %v", ErrInternal, i+1, sm.Kind, err)
		}
	}
	if out.Data, err = t.Encode(); err != nil {
		return out, fmt.Errorf("%w: export: %v", ErrInternal, err)
	}
	out.Records = map[int]int{}
	for _, r := range t.Records {
		out.Records[r.Type]++
	}
	return out, nil
}

// addKept writes one kept sample into a transaction.
func addKept(t *an2k.Transaction, sm store.Sample) error {
	switch sm.Kind {
	case store.SampleFacePhoto:
		if _, _, err := image.DecodeConfig(bytes.NewReader(sm.Data)); err != nil {
			// JPEG 2000 (a chip's photo): Type-10 takes it as it is.
			return addFaceJP2(t, sm.Data)
		}
		jpg := sm.Data
		if _, format, _ := image.DecodeConfig(bytes.NewReader(sm.Data)); format != "jpeg" {
			img, _, err := image.Decode(bytes.NewReader(sm.Data))
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
				return err
			}
			jpg = buf.Bytes()
		}
		_, err := t.AddFace(jpg, 1)
		return err
	case store.SampleFingerImage:
		fp := an2k.Fingerprint{PPI: sm.DPI, Position: int(sm.Position)}
		if bytes.HasPrefix(sm.Data, []byte{0xFF, 0xA0}) {
			fp.WSQ = sm.Data
		} else {
			g, info, err := fpimage.Decode(sm.Data)
			if err != nil {
				return err
			}
			fp.Gray = g
			if fp.PPI == 0 {
				fp.PPI = info.DPI
			}
		}
		_, err := t.AddFingerprint(fp)
		return err
	case store.SampleFingerRecord:
		rec, err := minutiae.Parse(sm.Data)
		if err != nil {
			return err
		}
		if sm.Position != 0 {
			for i := range rec.Views {
				if rec.Views[i].Position == minutiae.PositionUnknown {
					rec.Views[i].Position = minutiae.Position(sm.Position)
				}
			}
		}
		_, err = t.AddMinutiae(rec)
		return err
	}
	return errors.New("unknown kind")
}

// addFaceJP2 writes a JPEG 2000 photo (a chip's) as a Type-10 record as
// it is: re-encoding it would need OpenCV and lose quality.
func addFaceJP2(t *an2k.Transaction, jp2 []byte) error {
	typ, w, h, err := facerecord.ImageInfo(jp2)
	if err != nil {
		return err
	}
	if typ != facerecord.ImageJPEG2000 {
		return fmt.Errorf("a %s photo cannot be exported", typ)
	}
	// Field numbers of Type-10 (ANSI/NIST-ITL 1-2011 table 34): IMT, SRC,
	// PHD, HLL, VLL, SLC 0 (no scale), THPS, TVPS, CGA, CSP, SAP.
	it := strconv.Itoa
	r := an2k.Record{Type: 10}
	for _, f := range []an2k.Field{
		an2k.TextField(3, []string{"FACE"}), an2k.TextField(4, []string{t.Originator()}), an2k.TextField(5, []string{t.Date()}),
		an2k.TextField(6, []string{it(w)}), an2k.TextField(7, []string{it(h)}),
		an2k.TextField(8, []string{"0"}), an2k.TextField(9, []string{"1"}), an2k.TextField(10, []string{"1"}),
		an2k.TextField(11, []string{"JP2"}), an2k.TextField(12, []string{"SRGB"}), an2k.TextField(13, []string{"1"}),
		{Num: 999, Value: jp2},
	} {
		r.Set(f)
	}
	t.Add(r)
	return nil
}
