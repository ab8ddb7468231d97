package face

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bordermatch/bordermatch/templates"
)

// DefaultModel is the face recognition model matchd and the tools use when
// none is named: MobileFaceNet with a 192-d embedding, the most accurate
// at low false-match rates of the models obtainable here whose 1:N index
// stays within 300 bytes a face (README, "Face models").
const DefaultModel = "mobilefacenet-192"

// DlibModel names dlib's ResNet-29 (go-face's network, 128-d), which is
// not an ONNX model but dlib's own file, aligned to dlib's 150x150 chip.
const DlibModel = "dlib"

// Model describes a face recognition network: the descriptor file
// (models/NAME.json) beside the network, so that a new network is data, not
// code. The extractor runs any ONNX network so described through OpenCV's
// DNN module.
type Model struct {
	// Name and Version make the templates' algorithm: templates of
	// different names or versions are never compared.
	Name    string `json:"name"`
	Version uint16 `json:"version"`
	// File is the ONNX network, relative to the descriptor's folder.
	File string `json:"file"`
	// SHA256, when set, is checked when the network is loaded, so that a
	// different file under the same name cannot silently make templates
	// that do not compare with the gallery's.
	SHA256 string `json:"sha256,omitempty"`
	// InputSize is the side of the square aligned face the network reads.
	InputSize int `json:"inputSize"`
	// Alignment is the five-point template the face is warped onto:
	// "arcface-112" (insightface's, for 112x112 inputs).
	Alignment string `json:"alignment"`
	// Colour is the channel order the network expects: "rgb" or "bgr".
	Colour string `json:"colour"`
	// Mean and Scale normalise pixels: (value - Mean[c]) * Scale.
	Mean  [3]float64 `json:"mean"`
	Scale float64    `json:"scale"`
	// Input and Output name the network's input and embedding tensors
	// (empty Output: the last layer).
	Input  string `json:"input"`
	Output string `json:"output"`
	// Dim is the embedding's length.
	Dim int `json:"dim"`
	// What is known of where the network comes from (for the README and
	// an auditor; not used).
	Source       string `json:"source,omitempty"`
	Licence      string `json:"licence,omitempty"`
	TrainingData string `json:"trainingData,omitempty"`

	dir string // where the descriptor was read from
}

// Alignments the extractor knows.
const alignArcFace112 = "arcface-112"

// Algorithm is the algorithm of the templates the model makes.
func (m Model) Algorithm() templates.Algorithm {
	return templates.Algorithm{ID: m.Name, Version: m.Version}
}

// Path is the network file's path.
func (m Model) Path() string { return filepath.Join(m.dir, m.File) }

// Validate names the first field that is wrong.
func (m Model) Validate() error {
	switch {
	case m.Name == "" || len(m.Name) > 255 || strings.ContainsAny(m.Name, "/ \t\n"):
		return fmt.Errorf("name %q must be 1..255 bytes without '/' or spaces", m.Name)
	case m.Name == DlibModel:
		return fmt.Errorf("name %q is dlib's own network", m.Name)
	case m.Version == 0:
		return errors.New("version must be at least 1")
	case m.File == "" || !strings.HasSuffix(strings.ToLower(m.File), ".onnx"):
		return fmt.Errorf("file %q must be an .onnx network", m.File)
	case m.Alignment != alignArcFace112:
		return fmt.Errorf("alignment %q is not known (want %q)", m.Alignment, alignArcFace112)
	case m.InputSize != 112:
		return fmt.Errorf("inputSize %d: the %s alignment makes 112x112 faces", m.InputSize, m.Alignment)
	case m.Colour != "rgb" && m.Colour != "bgr":
		return fmt.Errorf("colour %q must be \"rgb\" or \"bgr\"", m.Colour)
	case !(m.Scale > 0):
		return fmt.Errorf("scale %v must be positive", m.Scale)
	case m.Dim < 16 || m.Dim > 4096:
		return fmt.Errorf("dim %d outside 16..4096", m.Dim)
	case m.SHA256 != "" && len(m.SHA256) != 64:
		return fmt.Errorf("sha256 %q is not 64 hex digits", m.SHA256)
	}
	return nil
}

// LoadModel reads a model descriptor: name is a model in modelsDir (name
// "mobilefacenet-192" reads modelsDir/mobilefacenet-192.json) or the path
// of a .json descriptor anywhere.
func LoadModel(modelsDir, name string) (Model, error) {
	path := name
	if !strings.HasSuffix(name, ".json") {
		path = filepath.Join(modelsDir, name+".json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Model{}, fmt.Errorf("templates: face model %q: no descriptor %s (models here: %s; `make models` builds the default ones)",
				name, path, strings.Join(Models(modelsDir), ", "))
		}
		return Model{}, fmt.Errorf("templates: face model %q: %w", name, err)
	}
	var m Model
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Model{}, fmt.Errorf("templates: face model descriptor %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return Model{}, fmt.Errorf("templates: face model descriptor %s: %w", path, err)
	}
	m.dir = filepath.Dir(path)
	return m, nil
}

// checkFile checks that the network file is there and, when the
// descriptor gives one, has its SHA-256.
func (m Model) checkFile() error {
	f, err := os.Open(m.Path())
	if err != nil {
		return fmt.Errorf("templates: face model %s: %w (run `make models`)", m.Name, err)
	}
	defer f.Close()
	if m.SHA256 == "" {
		return nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("templates: face model %s: %w", m.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, m.SHA256) {
		return fmt.Errorf("templates: face model %s: %s has SHA-256 %s, its descriptor says %s (rebuild it with `make models`, or fix the descriptor if the network was deliberately replaced, and re-template the gallery)",
			m.Name, m.Path(), got, m.SHA256)
	}
	return nil
}

// Models lists the model names in modelsDir: every descriptor, and "dlib"
// when dlib's network is there.
func Models(modelsDir string) []string {
	var names []string
	if st, err := os.Stat(filepath.Join(modelsDir, dlibNetFile)); err == nil && st.Size() > 0 {
		names = append(names, DlibModel)
	}
	files, _ := filepath.Glob(filepath.Join(modelsDir, "*.json"))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	return names
}
