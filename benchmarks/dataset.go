// Package benchmarks measures Bordermatch's accuracy and speed on labeled
// data, in the terms of ISO/IEC 19795-1: enrolment and acquisition failures,
// genuine and impostor score distributions, rank-1 identification.
package benchmarks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sample is one labeled biometric sample on disk.
type Sample struct {
	Identity string
	Path     string
}

var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

// ScanIdentityLayout lists the images of a data set laid out as
// <dir>/<identity>/<sample>.<ext>, sorted by identity then file name.
// Several roots may be given (their identities must not collide).
func ScanIdentityLayout(dirs ...string) ([]Sample, error) {
	var out []Sample
	seen := map[string]string{}
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
			for _, f := range files {
				if !f.IsDir() && imageExts[strings.ToLower(filepath.Ext(f.Name()))] {
					out = append(out, Sample{Identity: id.Name(), Path: filepath.Join(dir, id.Name(), f.Name())})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Identity != out[j].Identity {
			return out[i].Identity < out[j].Identity
		}
		return out[i].Path < out[j].Path
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("no <identity>/<sample> images under %s", strings.Join(dirs, ", "))
	}
	return out, nil
}
