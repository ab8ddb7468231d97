// Package idols reads idols.json, go-face's test fixture: 1,286 face
// descriptors that dlib's original dlib_face_recognition_resnet_model_v1.dat
// computed for 552 people. Tests use it as a real gallery for 1:N and as the
// yardstick for the face model that make models rebuilds.
package idols

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Person is one person of the gallery.
type Person struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Band string `json:"band_name"`
}

// Label is "Name, Band", unique where names alone are not.
func (p Person) Label() string { return p.Name + ", " + p.Band }

// Face is one descriptor and whose it is.
type Face struct {
	Person     Person
	Descriptor []float32 // 128 values
}

// Load reads idols.json.
func Load(path string) ([]Face, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Idols []Person `json:"idols"`
		Faces []struct {
			IdolID     string `json:"idol_id"`
			Descriptor string `json:"descriptor"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	people := make(map[string]Person, len(doc.Idols))
	for _, p := range doc.Idols {
		people[p.ID] = p
	}
	faces := make([]Face, 0, len(doc.Faces))
	for i, f := range doc.Faces {
		p, ok := people[f.IdolID]
		if !ok {
			return nil, fmt.Errorf("%s: face %d belongs to unknown idol %q", path, i, f.IdolID)
		}
		raw, err := base64.StdEncoding.DecodeString(f.Descriptor)
		if err != nil || len(raw) != 128*4 {
			return nil, fmt.Errorf("%s: face %d: descriptor is not base64 of 128 float32 (%v)", path, i, err)
		}
		v := make([]float32, 128)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		faces = append(faces, Face{Person: p, Descriptor: v})
	}
	return faces, nil
}
