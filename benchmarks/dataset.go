// Package benchmarks measures Bordermatch's accuracy and speed on labeled
// data, in the terms of ISO/IEC 19795-1 and of NIST's and FVC's
// evaluations: failures to enrol and acquire, genuine and impostor score
// distributions, FMR and FNMR over thresholds, EER, DET curves, rank-based
// (CMC) and threshold-based (FPIR/FNIR) identification, and speed.
//
// The evaluations are modality-agnostic: they see a Modality (extract a
// template from a sample file, compare two templates) and labeled samples
// on disk. cmd/bmbench is the command-line front end.
package benchmarks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Sample is one labeled biometric sample on disk.
type Sample struct {
	// Identity names the person (faces) or the finger (fingerprints).
	// Samples with the same Identity are mates.
	Identity string
	Path     string
}

// Layout is how a data set's files say whose they are.
type Layout string

const (
	// LayoutIdentity is <dir>/<identity>/<sample>.<ext>: one folder per
	// person, as face data sets come.
	LayoutIdentity Layout = "identity"
	// LayoutFVC is <dir>/<finger>_<impression>.<ext>, as the Fingerprint
	// Verification Competitions distribute their sets.
	LayoutFVC Layout = "fvc"
)

// ParseLayout checks a --layout value.
func ParseLayout(s string) (Layout, error) {
	switch l := Layout(s); l {
	case LayoutIdentity, LayoutFVC:
		return l, nil
	}
	return "", fmt.Errorf("layout %q: want identity or fvc", s)
}

// sampleExts are the file types the extractors read.
var sampleExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true,
	".tif": true, ".tiff": true, ".bmp": true, ".wsq": true,
	".iso": true, ".ist": true, ".ansi": true, ".fmr": true, // minutiae records
}

// Scan lists the samples of one or more data set folders in the given
// layout, sorted by identity and then by sample (impressions in numeric
// order), so that "the first sample of an identity" is well defined.
// With several folders, an identity found in two of them is an error for
// the identity layout (two people under one name); for the FVC layout,
// where every set numbers its fingers 101…, identities are prefixed with
// the folder's name.
func Scan(layout Layout, dirs ...string) ([]Sample, error) {
	switch layout {
	case LayoutIdentity:
		return ScanIdentityLayout(dirs...)
	case LayoutFVC:
		return ScanFVCLayout(dirs...)
	}
	return nil, fmt.Errorf("layout %q: want identity or fvc", layout)
}

// ScanIdentityLayout lists the samples under <dir>/<identity>/<sample>.<ext>.
func ScanIdentityLayout(dirs ...string) ([]Sample, error) {
	var out []Sample
	seen := map[string]string{}
	var nested []string // identity folders holding folders rather than samples
	for _, dir := range dirs {
		ids, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !id.IsDir() {
				continue
			}
			if prev, ok := seen[id.Name()]; ok {
				return nil, fmt.Errorf("identity %q appears under %s and %s", id.Name(), prev, dir)
			}
			seen[id.Name()] = dir
			files, err := os.ReadDir(filepath.Join(dir, id.Name()))
			if err != nil {
				return nil, err
			}
			n, subdirs := 0, 0
			for _, f := range files {
				switch {
				case f.IsDir():
					subdirs++
				case sampleExts[strings.ToLower(filepath.Ext(f.Name()))]:
					out = append(out, Sample{Identity: id.Name(), Path: filepath.Join(dir, id.Name(), f.Name())})
					n++
				}
			}
			if n == 0 && subdirs > 0 {
				nested = append(nested, filepath.Join(dir, id.Name()))
			}
		}
	}
	slices.SortFunc(out, func(a, b Sample) int {
		if c := strings.Compare(a.Identity, b.Identity); c != 0 {
			return c
		}
		return naturalCompare(filepath.Base(a.Path), filepath.Base(b.Path))
	})
	if len(out) == 0 {
		if len(nested) > 0 {
			return nil, fmt.Errorf("no <identity>/<sample> files under %s, but %s hold folders: pass those as --data (one per folder of identities)",
				strings.Join(dirs, ", "), strings.Join(nested, ", "))
		}
		return nil, fmt.Errorf("no <identity>/<sample> files (%s) under %s", extList(), strings.Join(dirs, ", "))
	}
	return out, nil
}

var fvcName = regexp.MustCompile(`^(\w+?)_(\d+)\.[A-Za-z]+$`)

// ScanFVCLayout lists the samples named <finger>_<impression>.<ext>.
func ScanFVCLayout(dirs ...string) ([]Sample, error) {
	var out []Sample
	for _, dir := range dirs {
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		prefix := ""
		if len(dirs) > 1 {
			prefix = filepath.Base(filepath.Clean(dir)) + "/"
		}
		for _, f := range files {
			if f.IsDir() || !sampleExts[strings.ToLower(filepath.Ext(f.Name()))] {
				continue
			}
			m := fvcName.FindStringSubmatch(f.Name())
			if m == nil {
				return nil, fmt.Errorf("%s: not named <finger>_<impression>.<ext> (the fvc layout)", filepath.Join(dir, f.Name()))
			}
			out = append(out, Sample{Identity: prefix + m[1], Path: filepath.Join(dir, f.Name())})
		}
	}
	slices.SortFunc(out, func(a, b Sample) int {
		if c := naturalCompare(a.Identity, b.Identity); c != 0 {
			return c
		}
		return naturalCompare(filepath.Base(a.Path), filepath.Base(b.Path))
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("no <finger>_<impression> files (%s) under %s", extList(), strings.Join(dirs, ", "))
	}
	return out, nil
}

func extList() string {
	exts := make([]string, 0, len(sampleExts))
	for e := range sampleExts {
		exts = append(exts, e)
	}
	slices.Sort(exts)
	return strings.Join(exts, " ")
}

var digits = regexp.MustCompile(`\d+|\D+`)

// naturalCompare orders "2.png" before "10.png".
func naturalCompare(a, b string) int {
	pa, pb := digits.FindAllString(a, -1), digits.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, errx := strconv.Atoi(pa[i])
		y, erry := strconv.Atoi(pb[i])
		if errx == nil && erry == nil {
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
			continue
		}
		if c := strings.Compare(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

// Identities counts the distinct identities of samples.
func Identities(samples []Sample) int {
	n := 0
	for i := range samples {
		if i == 0 || samples[i].Identity != samples[i-1].Identity {
			n++
		}
	}
	return n
}

// HashSamples is a SHA-256 over every sample's identity, file name and
// content, in order: two reports with the same hash were measured on the
// same data, whatever folder it was copied to.
func HashSamples(samples []Sample) (string, error) {
	h := sha256.New()
	for _, s := range samples {
		fmt.Fprintf(h, "%s\x00%s\x00", s.Identity, filepath.Base(s.Path))
		f, err := os.Open(s.Path)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", s.Path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
