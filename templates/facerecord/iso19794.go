package facerecord

import "fmt"

const (
	magic19794   = "FAC\x00"
	version19794 = "010\x00"
	// Sizes in ISO/IEC 19794-5:2005: general header, facial information
	// (before the feature points), one feature point, image information.
	header19794    = 14
	faceInfo19794  = 20
	featurePt19794 = 8
	imageInfo19794 = 12
)

// iso19794 reads an ISO/IEC 19794-5:2005 record in p.b[off:end].
//
// Layout: "FAC\0", "010\0", record length (4), number of faces (2); per
// face: block length (4), number of feature points (2), gender, eye
// colour, hair colour, feature mask (3), expression (2), pose angles
// yaw/pitch/roll (3), their uncertainties (3), 8 bytes per feature point,
// face image type, image data type, width (2), height (2), colour space,
// source type, device type (2), quality (2), then the image to the end of
// the block.
func (p *parser) iso19794(off, end int) ([]Face, error) {
	b := p.b
	if end-off < header19794 {
		return nil, p.fail(ErrTruncated, off, "", "19794-5 general header", "needs %d bytes, %d remain", header19794, end-off)
	}
	if string(b[off:off+4]) != magic19794 {
		return nil, p.fail(ErrFormat, off, "", "19794-5 format identifier", "%q, want \"FAC\\x00\"", b[off:off+4])
	}
	if v := string(b[off+4 : off+8]); v != version19794 {
		return nil, p.fail(ErrUnsupported, off+4, "", "19794-5 version", "%q; only \"010\\x00\" (ISO/IEC 19794-5:2005) is read", v)
	}
	reclen := uint64(u32(b, off+8))
	if reclen < header19794 {
		return nil, p.fail(ErrFormat, off+8, "", "19794-5 record length", "%d, less than the %d-byte header", reclen, header19794)
	}
	if reclen > uint64(end-off) {
		return nil, p.fail(ErrTruncated, off+8, "", "19794-5 record length", "%d runs past the end (%d bytes)", reclen, end-off)
	}
	end = off + int(reclen)
	n := u16(b, off+12)
	if n == 0 {
		return nil, p.fail(ErrFormat, off+12, "", "19794-5 number of faces", "0")
	}
	faces := make([]Face, 0, min(n, (end-off)/(faceInfo19794+imageInfo19794)+1))
	pos := off + header19794
	for i := 1; i <= n; i++ {
		field := fmt.Sprintf("19794-5 face %d", i)
		if end-pos < 4 {
			return nil, p.fail(ErrTruncated, pos, "", field+" block length", "needs 4 bytes, %d remain of the record", end-pos)
		}
		blen := uint64(u32(b, pos))
		if blen < faceInfo19794+imageInfo19794 {
			return nil, p.fail(ErrFormat, pos, "", field+" block length", "%d, less than the %d bytes of the face's fixed fields", blen, faceInfo19794+imageInfo19794)
		}
		if blen > uint64(end-pos) {
			return nil, p.fail(ErrTruncated, pos, "", field+" block length", "%d runs past the end of the record (%d bytes remain)", blen, end-pos)
		}
		bend := pos + int(blen)
		f := Face{Format: FormatISO19794}
		nfp := u16(b, pos+4)
		info := pos + faceInfo19794 + featurePt19794*nfp
		if info+imageInfo19794 > bend {
			return nil, p.fail(ErrFormat, pos+4, "", field+" feature points", "%d feature points and the image information do not fit in the %d-byte block", nfp, blen)
		}
		f.FeaturePoints = nfp
		f.Gender = gender19794(b[pos+6])
		f.EyeColour = eye19794(b[pos+7])
		f.HairColour = hair19794(b[pos+8])
		if e := u16(b, pos+12); e <= 7 {
			f.Expression = Expression(e)
		}
		f.Pose = Pose{
			Yaw:   angle19794(b[pos+14], b[pos+17]),
			Pitch: angle19794(b[pos+15], b[pos+18]),
			Roll:  angle19794(b[pos+16], b[pos+19]),
		}
		if t := b[info]; t <= 2 {
			f.FaceImageType = FaceImageType(t + 1)
		}
		switch b[info+1] {
		case 0:
			f.DeclaredImageType = ImageJPEG
		case 1:
			f.DeclaredImageType = ImageJPEG2000
		}
		f.DeclaredWidth, f.DeclaredHeight = u16(b, info+2), u16(b, info+4)
		if c := b[info+6]; c <= 4 {
			f.ColourSpace = ColourSpace(c)
		} else {
			f.ColourSpace = ColourUnknown
		}
		if s := b[info+7]; s <= 7 {
			f.SourceType = SourceType(s)
		} else {
			f.SourceType = SourceUnknown
		}
		f.DeviceType = uint16(u16(b, info+8))
		f.Quality = u16(b, info+10)
		if err := p.image(&f, info+imageInfo19794, bend, field+" image"); err != nil {
			return nil, err
		}
		faces = append(faces, f)
		pos = bend
	}
	if pos != end {
		return nil, p.fail(ErrFormat, pos, "", "19794-5 record", "%d bytes after the last face, inside the record length", end-pos)
	}
	return faces, nil
}

// angle19794 decodes a 2005 pose angle (0 unspecified; 1–181 for −180° to
// +180° in steps of 2°) and its uncertainty (0 unspecified; 1–181 for 0° to
// 180°).
func angle19794(v, u byte) Angle {
	var a Angle
	if v >= 1 && v <= 181 {
		a.Set, a.Degrees = true, (int(v)-91)*2
	}
	if u >= 1 && u <= 181 {
		a.UncertaintySet, a.Uncertainty = true, int(u)-1
	}
	return a
}

func gender19794(v byte) Gender {
	switch v {
	case 1:
		return GenderMale
	case 2:
		return GenderFemale
	case 0xFF:
		return GenderUnknown
	}
	return GenderUnspecified
}

func eye19794(v byte) EyeColour {
	switch v {
	case 1:
		return EyeBlack
	case 2:
		return EyeBlue
	case 3:
		return EyeBrown
	case 4:
		return EyeGrey
	case 5:
		return EyeGreen
	case 6:
		return EyeMultiColoured
	case 7:
		return EyePink
	case 0xFF:
		return EyeOther
	}
	return EyeUnspecified
}

func hair19794(v byte) HairColour {
	if v >= 1 && v <= 9 { // bald, black, blonde, brown, grey, white, red, green, blue
		return HairColour(v)
	}
	if v == 0xFF {
		return HairUnknown
	}
	return HairUnspecified
}
