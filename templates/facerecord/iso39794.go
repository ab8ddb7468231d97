package facerecord

// ISO/IEC 39794-5 tags. The module uses implicit tagging: a SEQUENCE
// field [n] is tag A0+n, an INTEGER, BOOLEAN or OCTET STRING field [n] is
// 80+n; a CHOICE field keeps an explicit tag A0+n around the chosen
// alternative, and most code fields are a CHOICE of an extension block
// [1] holding the code as its fallback [0].
const (
	tagAP39794 = 0xA1 // ICAO profile wrapper around FaceImageDataBlock (the value of DG2 tag 7F2E)
	tagFIDB    = 0x65 // FaceImageDataBlock ::= [APPLICATION 5] SEQUENCE
	tagSeq     = 0x30
)

// iso39794 reads an ISO/IEC 39794-5 record in p.b[off:end]:
//
//	A1 (ICAO profile wrapper, optional here)
//	  65 FaceImageDataBlock
//	    A0 versionBlock
//	    A1 representationBlocks: 30 RepresentationBlock…
//	      80 representationId
//	      A1 imageRepresentation / A0 base / A0 imageRepresentation2DBlock
//	        80 representationData2D (the image)
//	        A1 imageInformation2DBlock
//	          A0 imageDataFormat / 80 code; A1 faceImageKind2D; A7 imageSizeBlock; A9 imageColourSpace
//	        A2 captureDevice2DBlock / A1 captureDeviceTechnologyId2D
//	      A3 qualityBlocks; A8 identityMetadataBlock; A9 landmarkBlocks
func (p *parser) iso39794(off, end int) ([]Face, error) {
	top, err := p.next(off, end, "the record")
	if err != nil {
		return nil, err
	}
	fidb := top
	switch top.tag {
	case tagAP39794:
		kids, err := p.children(top)
		if err != nil {
			return nil, err
		}
		if len(kids) != 1 || kids[0].tag != tagFIDB {
			return nil, p.fail(ErrFormat, top.off, top.name(), "39794-5 record", "want one FaceImageDataBlock (65), found %s", tagList(kids))
		}
		fidb = kids[0]
	case tagFIDB:
	default:
		return nil, p.fail(ErrFormat, top.off, top.name(), "39794-5 record", "not a FaceImageDataBlock (65) or its ICAO wrapper (A1)")
	}
	kids, err := p.children(fidb)
	if err != nil {
		return nil, err
	}
	if _, err := p.need(fidb, kids, 0xA0, "version block"); err != nil {
		return nil, err
	}
	rb, err := p.need(fidb, kids, 0xA1, "representation blocks")
	if err != nil {
		return nil, err
	}
	reps, err := p.children(rb)
	if err != nil {
		return nil, err
	}
	if len(reps) == 0 {
		return nil, p.fail(ErrFormat, rb.off, rb.name(), "representation blocks", "empty")
	}
	faces := make([]Face, 0, len(reps))
	for _, r := range reps {
		if r.tag != tagSeq {
			return nil, p.fail(ErrFormat, r.off, r.name(), "representation block", "not a SEQUENCE (30)")
		}
		f, err := p.rep39794(r)
		if err != nil {
			return nil, err
		}
		faces = append(faces, f)
	}
	return faces, nil
}

func (p *parser) rep39794(r tlv) (Face, error) {
	f := Face{Format: FormatISO39794}
	kids, err := p.children(r)
	if err != nil {
		return f, err
	}
	id, err := p.need(r, kids, 0x80, "representation id")
	if err != nil {
		return f, err
	}
	if _, err := p.integer(id, 0, 1<<62, "representation id"); err != nil {
		return f, err
	}
	ir, err := p.need(r, kids, 0xA1, "image representation")
	if err != nil {
		return f, err
	}
	base, ok, err := p.path(ir, 0xA0)
	if err != nil {
		return f, err
	}
	if !ok {
		return f, p.fail(ErrUnsupported, ir.off, ir.name(), "image representation", "no base 2D representation (A0): an extension this package does not read")
	}
	block, ok, err := p.path(base, 0xA0)
	if err != nil {
		return f, err
	}
	if !ok {
		return f, p.fail(ErrFormat, base.off, base.name(), "image representation", "no 2D image block (A0)")
	}
	bk, err := p.children(block)
	if err != nil {
		return f, err
	}
	data, err := p.need(block, bk, 0x80, "image data")
	if err != nil {
		return f, err
	}
	if data.constructed {
		return f, p.fail(ErrFormat, data.off, data.name(), "image data", "constructed; an OCTET STRING is primitive in DER")
	}
	info, err := p.need(block, bk, 0xA1, "image information block")
	if err != nil {
		return f, err
	}
	if err := p.imageInfo39794(&f, info); err != nil {
		return f, err
	}
	if dev, ok := find(bk, 0xA2); ok {
		v, ok, err := p.pathInt(dev, 0, 255, "capture device technology", 0xA1, 0xA1, 0x80)
		if err != nil {
			return f, err
		}
		if ok {
			f.SourceType = SourceUnknown
			if v >= 1 && v <= 6 {
				f.SourceType = SourceType(v)
			}
		}
	}
	if q, ok := find(kids, 0xA3); ok {
		if err := p.quality39794(&f, q); err != nil {
			return f, err
		}
	}
	if m, ok := find(kids, 0xA8); ok {
		if err := p.identity39794(&f, m); err != nil {
			return f, err
		}
	}
	if l, ok := find(kids, 0xA9); ok {
		lk, err := p.children(l)
		if err != nil {
			return f, err
		}
		f.FeaturePoints = len(lk)
	}
	if err := p.image(&f, data.voff, data.voff+len(data.val), "39794-5 image data"); err != nil {
		return f, err
	}
	return f, nil
}

func (p *parser) imageInfo39794(f *Face, info tlv) error {
	ik, err := p.children(info)
	if err != nil {
		return err
	}
	format, err := p.need(info, ik, 0xA0, "image data format")
	if err != nil {
		return err
	}
	if v, ok, err := p.pathInt(format, 0, 255, "image data format", 0x80); err != nil {
		return err
	} else if ok {
		switch v {
		case 2:
			f.DeclaredImageType = ImageJPEG
		case 3, 4:
			f.DeclaredImageType = ImageJPEG2000
		}
	}
	if k, ok := find(ik, 0xA1); ok {
		v, ok, err := p.pathInt(k, 0, 255, "face image kind", 0xA1, 0x80)
		if err != nil {
			return err
		}
		if ok && v == 0 {
			f.FaceImageType = FaceImageMRTD
		}
	}
	if s, ok := find(ik, 0xA7); ok {
		w, _, err := p.pathInt(s, 0, 65535, "image width", 0x80)
		if err != nil {
			return err
		}
		h, _, err := p.pathInt(s, 0, 65535, "image height", 0x81)
		if err != nil {
			return err
		}
		f.DeclaredWidth, f.DeclaredHeight = int(w), int(h)
	}
	if c, ok := find(ik, 0xA9); ok {
		v, ok, err := p.pathInt(c, 0, 255, "image colour space", 0xA1, 0x80)
		if err != nil {
			return err
		}
		if ok {
			f.ColourSpace = [...]ColourSpace{ColourUnknown, ColourOther, ColourRGB24, ColourRGB48, ColourYUV422, ColourGrey8, ColourGrey16, ColourUnknown}[min(v, 7)]
		}
	}
	return nil
}

// quality39794 keeps the score of the first quality block
// (QualityBlock: A0 algorithm id, A1 score-or-error / 80 score).
func (p *parser) quality39794(f *Face, q tlv) error {
	qk, err := p.children(q)
	if err != nil || len(qk) == 0 {
		return err
	}
	v, ok, err := p.pathInt(qk[0], 0, 100, "quality score", 0xA1, 0x80)
	if ok {
		f.Quality = int(v)
	}
	return err
}

func (p *parser) identity39794(f *Face, m tlv) error {
	if v, ok, err := p.pathInt(m, 0, 255, "gender", 0xA0, 0xA1, 0x80); err != nil {
		return err
	} else if ok {
		f.Gender = [...]Gender{GenderUnspecified, GenderOther, GenderMale, GenderFemale, GenderUnspecified}[min(v, 4)]
	}
	if v, ok, err := p.pathInt(m, 0, 255, "eye colour", 0xA1, 0xA1, 0x80); err != nil {
		return err
	} else if ok {
		f.EyeColour = [...]EyeColour{EyeUnknown, EyeOther, EyeBlack, EyeBlue, EyeBrown, EyeGrey, EyeGreen, EyeHazel, EyeMultiColoured, EyePink, EyeUnspecified}[min(v, 10)]
	}
	if v, ok, err := p.pathInt(m, 0, 255, "hair colour", 0xA2, 0xA1, 0x80); err != nil {
		return err
	} else if ok {
		f.HairColour = [...]HairColour{HairUnknown, HairOther, HairBald, HairBlack, HairBlonde, HairBrown, HairGrey, HairWhite, HairRed, HairKnownColoured, HairUnspecified}[min(v, 10)]
	}
	if e, ok, err := p.path(m, 0xA5); err != nil {
		return err
	} else if ok {
		ek, err := p.children(e)
		if err != nil {
			return err
		}
		// neutral [0], smile [1], raisedEyebrows [2], eyesLookingAway [3],
		// squinting [4], frowning [5]
		flags := [...]Expression{ExpressionNeutral, ExpressionSmile, ExpressionRaisedEyebrows, ExpressionEyesAway, ExpressionSquinting, ExpressionFrowning}
		for _, k := range ek {
			if k.tag < 0x80 || k.tag > 0x85 {
				continue
			}
			set, err := p.boolean(k, "expression")
			if err != nil {
				return err
			}
			if set && f.Expression == ExpressionUnspecified {
				f.Expression = flags[k.tag-0x80]
			}
		}
	}
	if pose, ok, err := p.path(m, 0xA6); err != nil {
		return err
	} else if ok {
		for i, a := range []*Angle{&f.Pose.Yaw, &f.Pose.Pitch, &f.Pose.Roll} {
			blk, ok, err := p.path(pose, 0xA0+uint32(i))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			v, ok, err := p.pathInt(blk, -180, 180, "pose angle", 0x80)
			if err != nil {
				return err
			}
			if !ok {
				return p.fail(ErrFormat, blk.off, blk.name(), "pose angle", "no angle value (80)")
			}
			a.Set, a.Degrees = true, int(v)
			u, ok, err := p.pathInt(blk, 0, 180, "pose angle uncertainty", 0x81)
			if err != nil {
				return err
			}
			a.UncertaintySet, a.Uncertainty = ok, int(u)
		}
	}
	return nil
}
