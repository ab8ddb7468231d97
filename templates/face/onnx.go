package face

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// onnxNet is one worker's copy of an ONNX face network in OpenCV's DNN
// module (a gocv.Net is not safe for concurrent use).
type onnxNet struct {
	m   Model
	net gocv.Net
}

func loadONNX(m Model) (*onnxNet, error) {
	net := gocv.ReadNetFromONNX(m.Path())
	if net.Empty() {
		return nil, fmt.Errorf("templates: face model %s: OpenCV could not read %s as an ONNX network", m.Name, m.Path())
	}
	if err := net.SetPreferableBackend(gocv.NetBackendOpenCV); err != nil {
		net.Close()
		return nil, fmt.Errorf("templates: face model %s: %w", m.Name, err)
	}
	if err := net.SetPreferableTarget(gocv.NetTargetCPU); err != nil {
		net.Close()
		return nil, fmt.Errorf("templates: face model %s: %w", m.Name, err)
	}
	return &onnxNet{m: m, net: net}, nil
}

func (n *onnxNet) close() { n.net.Close() }

// embed runs the network on an aligned face (an RGB Mat of the model's
// input size) and returns the embedding as the network gives it.
func (n *onnxNet) embed(chip gocv.Mat) ([]float32, error) {
	m := n.m
	blob := gocv.BlobFromImage(chip, m.Scale, image.Pt(m.InputSize, m.InputSize),
		gocv.NewScalar(m.Mean[0], m.Mean[1], m.Mean[2], 0), m.Colour == "bgr", false)
	defer blob.Close()
	n.net.SetInput(blob, m.Input)
	out := n.net.Forward(m.Output)
	defer out.Close()
	if out.Empty() {
		return nil, fmt.Errorf("templates: face model %s: the network gave no output", m.Name)
	}
	if out.Total() != m.Dim {
		return nil, fmt.Errorf("templates: face model %s: the network gave %d values, its descriptor says dim %d", m.Name, out.Total(), m.Dim)
	}
	v, err := out.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("templates: face model %s: %w", m.Name, err)
	}
	return append([]float32(nil), v...), nil
}
