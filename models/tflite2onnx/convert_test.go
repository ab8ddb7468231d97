package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"
	"gocv.io/x/gocv"
)

// A tiny TFLite model written with FlatBuffers' own builder, so that the
// hand-written reader is checked against the reference encoder, and a plain
// NHWC implementation of its ops to check what OpenCV computes from the
// converted ONNX.

type tbTensor struct {
	name  string
	shape []int32
	f32   []float32 // constant data, nil for an activation
	i32   []int32
	typ   int8
}

type tbOp struct {
	code    int32
	in, out []int32
	optType uint8
	opts    func(b *flatbuffers.Builder) flatbuffers.UOffsetT
}

func int32Vector(b *flatbuffers.Builder, v []int32) flatbuffers.UOffsetT {
	b.StartVector(4, len(v), 4)
	for i := len(v) - 1; i >= 0; i-- {
		b.PrependInt32(v[i])
	}
	return b.EndVector(len(v))
}

func offsetVector(b *flatbuffers.Builder, v []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	b.StartVector(4, len(v), 4)
	for i := len(v) - 1; i >= 0; i-- {
		b.PrependUOffsetT(v[i])
	}
	return b.EndVector(len(v))
}

// buildTFLite writes a one-subgraph model. Operator codes alternate between
// the old encoding (deprecated_builtin_code only) and the new one
// (builtin_code only), as files of either era have them.
func buildTFLite(tensors []tbTensor, ops []tbOp, inputs, outputs []int32) []byte {
	b := flatbuffers.NewBuilder(1024)
	var codes []int32
	codeIdx := map[int32]uint32{}
	for _, op := range ops {
		if _, ok := codeIdx[op.code]; !ok {
			codeIdx[op.code] = uint32(len(codes))
			codes = append(codes, op.code)
		}
	}
	// Buffers: 0 is the empty sentinel, then one per constant.
	bufs := []flatbuffers.UOffsetT{}
	b.StartObject(3)
	bufs = append(bufs, b.EndObject())
	tensorBuf := make([]uint32, len(tensors))
	for i, t := range tensors {
		var raw []byte
		switch {
		case t.f32 != nil:
			raw = make([]byte, 4*len(t.f32))
			for k, v := range t.f32 {
				binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(v))
			}
		case t.i32 != nil:
			raw = make([]byte, 4*len(t.i32))
			for k, v := range t.i32 {
				binary.LittleEndian.PutUint32(raw[4*k:], uint32(v))
			}
		default:
			continue
		}
		data := b.CreateByteVector(raw)
		b.StartObject(3)
		b.PrependUOffsetTSlot(bufferData, data, 0)
		tensorBuf[i] = uint32(len(bufs))
		bufs = append(bufs, b.EndObject())
	}
	var tens []flatbuffers.UOffsetT
	for i, t := range tensors {
		name := b.CreateString(t.name)
		shape := int32Vector(b, t.shape)
		b.StartObject(8)
		b.PrependUOffsetTSlot(tensorShape, shape, 0)
		b.PrependInt8Slot(tensorType, t.typ, 0)
		b.PrependUint32Slot(tensorBuffer, tensorBuf[i], 0)
		b.PrependUOffsetTSlot(tensorName, name, 0)
		tens = append(tens, b.EndObject())
	}
	var opOffs []flatbuffers.UOffsetT
	for _, op := range ops {
		in, out := int32Vector(b, op.in), int32Vector(b, op.out)
		var opts flatbuffers.UOffsetT
		if op.opts != nil {
			opts = op.opts(b)
		}
		b.StartObject(6)
		b.PrependUint32Slot(operatorOpcodeIndex, codeIdx[op.code], 0)
		b.PrependUOffsetTSlot(operatorInputs, in, 0)
		b.PrependUOffsetTSlot(operatorOutputs, out, 0)
		if op.opts != nil {
			b.PrependByteSlot(operatorOptionsType, op.optType, 0)
			b.PrependUOffsetTSlot(operatorOptions, opts, 0)
		}
		opOffs = append(opOffs, b.EndObject())
	}
	tv, iv, ov, opv := offsetVector(b, tens), int32Vector(b, inputs), int32Vector(b, outputs), offsetVector(b, opOffs)
	b.StartObject(5)
	b.PrependUOffsetTSlot(subgraphTensors, tv, 0)
	b.PrependUOffsetTSlot(subgraphInputs, iv, 0)
	b.PrependUOffsetTSlot(subgraphOutputs, ov, 0)
	b.PrependUOffsetTSlot(subgraphOperators, opv, 0)
	sg := b.EndObject()
	var codeOffs []flatbuffers.UOffsetT
	for i, c := range codes {
		b.StartObject(4)
		if i%2 == 0 {
			b.PrependInt8Slot(opcodeDeprecatedBuiltin, int8(c), 0)
		} else {
			b.PrependInt32Slot(opcodeBuiltin, c, 0)
		}
		b.PrependInt32Slot(opcodeVersion, 1, 1)
		codeOffs = append(codeOffs, b.EndObject())
	}
	cv, sv, bv := offsetVector(b, codeOffs), offsetVector(b, []flatbuffers.UOffsetT{sg}), offsetVector(b, bufs)
	desc := b.CreateString("synthetic")
	b.StartObject(5)
	b.PrependUint32Slot(modelVersion, 3, 0)
	b.PrependUOffsetTSlot(modelOperatorCodes, cv, 0)
	b.PrependUOffsetTSlot(modelSubgraphs, sv, 0)
	b.PrependUOffsetTSlot(modelDescription, desc, 0)
	b.PrependUOffsetTSlot(modelBuffers, bv, 0)
	b.FinishWithFileIdentifier(b.EndObject(), []byte("TFL3"))
	return b.FinishedBytes()
}

func convOpts(stride int32, act int8) func(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	return func(b *flatbuffers.Builder) flatbuffers.UOffsetT {
		b.StartObject(6)
		b.PrependInt8Slot(0, padSame, 0)
		b.PrependInt32Slot(1, stride, 0)
		b.PrependInt32Slot(2, stride, 0)
		b.PrependInt8Slot(3, act, 0)
		return b.EndObject()
	}
}

func dwOpts(stride, mult int32, act int8) func(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	return func(b *flatbuffers.Builder) flatbuffers.UOffsetT {
		b.StartObject(7)
		b.PrependInt32Slot(1, stride, 0)
		b.PrependInt32Slot(2, stride, 0)
		b.PrependInt32Slot(3, mult, 0)
		b.PrependInt8Slot(4, act, 0)
		return b.EndObject()
	}
}

func actOpts(act int8) func(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	return func(b *flatbuffers.Builder) flatbuffers.UOffsetT {
		b.StartObject(1)
		b.PrependInt8Slot(0, act, 0)
		return b.EndObject()
	}
}

func randFloats(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((r.Float64()*2 - 1) * scale)
	}
	return v
}

// synthetic is a small network with every op and pattern the converter
// handles: a strided 3×3 conv with odd SAME padding, a TF-style PReLU, a
// depthwise conv with multiplier 2 and a fused ReLU, a per-channel constant
// add, a 1×1 conv with a fused ReLU, a residual add, a scalar multiply and a
// reshape of a 4×4 map (which must flatten in NHWC order). Batch 2, as in
// MobileFaceNet.tflite.
func synthetic() (tensors []tbTensor, ops []tbOp) {
	r := rand.New(rand.NewSource(1))
	tensors = []tbTensor{
		0:  {name: "input", shape: []int32{2, 8, 8, 3}},
		1:  {name: "w1", shape: []int32{4, 3, 3, 3}, f32: randFloats(r, 4*3*3*3, 0.5)},
		2:  {name: "b1", shape: []int32{4}, f32: randFloats(r, 4, 0.2)},
		3:  {name: "conv1", shape: []int32{2, 4, 4, 4}},
		4:  {name: "relu", shape: []int32{2, 4, 4, 4}},
		5:  {name: "abs", shape: []int32{2, 4, 4, 4}},
		6:  {name: "sub", shape: []int32{2, 4, 4, 4}},
		7:  {name: "alpha", shape: []int32{4}, f32: []float32{0.125, -0.25, 0.05, 0.4}},
		8:  {name: "mul", shape: []int32{2, 4, 4, 4}},
		9:  {name: "prelu", shape: []int32{2, 4, 4, 4}},
		10: {name: "wdw", shape: []int32{1, 3, 3, 8}, f32: randFloats(r, 3*3*8, 0.5)},
		11: {name: "bdw", shape: []int32{8}, f32: randFloats(r, 8, 0.2)},
		12: {name: "dw", shape: []int32{2, 4, 4, 8}},
		13: {name: "shift", shape: []int32{1, 1, 1, 8}, f32: randFloats(r, 8, 0.3)},
		14: {name: "shifted", shape: []int32{2, 4, 4, 8}},
		15: {name: "w2", shape: []int32{8, 1, 1, 8}, f32: randFloats(r, 64, 2)},
		16: {name: "b2", shape: []int32{8}, f32: randFloats(r, 8, 1)},
		17: {name: "conv2", shape: []int32{2, 4, 4, 8}},
		18: {name: "residual", shape: []int32{2, 4, 4, 8}},
		19: {name: "half", shape: []int32{}, f32: []float32{0.5}},
		20: {name: "scaled", shape: []int32{2, 4, 4, 8}},
		21: {name: "newshape", shape: []int32{2}, i32: []int32{2, 128}, typ: typeInt32},
		22: {name: "output", shape: []int32{2, 128}},
	}
	ops = []tbOp{
		{code: opConv2D, in: []int32{0, 1, 2}, out: []int32{3}, optType: optConv2D, opts: convOpts(2, actNone)},
		{code: opRelu, in: []int32{3}, out: []int32{4}},
		{code: opAbs, in: []int32{3}, out: []int32{5}},
		{code: opSub, in: []int32{3, 5}, out: []int32{6}, optType: optSub, opts: actOpts(actNone)},
		{code: opMul, in: []int32{7, 6}, out: []int32{8}, optType: optMul, opts: actOpts(actNone)},
		{code: opAdd, in: []int32{4, 8}, out: []int32{9}, optType: optAdd, opts: actOpts(actNone)},
		{code: opDepthwiseConv2D, in: []int32{9, 10, 11}, out: []int32{12}, optType: optDepthwiseConv2D, opts: dwOpts(1, 2, actRelu)},
		{code: opAdd, in: []int32{12, 13}, out: []int32{14}, optType: optAdd, opts: actOpts(actNone)},
		{code: opConv2D, in: []int32{14, 15, 16}, out: []int32{17}, optType: optConv2D, opts: convOpts(1, actRelu)},
		{code: opAdd, in: []int32{17, 14}, out: []int32{18}, optType: optAdd, opts: actOpts(actNone)},
		{code: opMul, in: []int32{18, 19}, out: []int32{20}, optType: optMul, opts: actOpts(actNone)},
		{code: opReshape, in: []int32{20, 21}, out: []int32{22}},
	}
	return tensors, ops
}

// refConv is a TensorFlow-style NHWC convolution of one image with SAME
// padding; mult > 0 makes it depthwise with that channel multiplier.
func refConv(x []float64, h, w, c int, f []float32, o, k, stride, mult int, bias []float32) ([]float64, int, int) {
	oh, ow := (h+stride-1)/stride, (w+stride-1)/stride
	padT := max(((oh-1)*stride+k-h)/2, 0)
	padL := max(((ow-1)*stride+k-w)/2, 0)
	out := make([]float64, oh*ow*o)
	for y := 0; y < oh; y++ {
		for z := 0; z < ow; z++ {
			for q := 0; q < o; q++ {
				s := float64(bias[q])
				for ky := 0; ky < k; ky++ {
					for kx := 0; kx < k; kx++ {
						iy, ix := y*stride+ky-padT, z*stride+kx-padL
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						if mult > 0 {
							s += x[(iy*w+ix)*c+q/mult] * float64(f[(ky*k+kx)*o+q])
							continue
						}
						for i := 0; i < c; i++ {
							s += x[(iy*w+ix)*c+i] * float64(f[((q*k+ky)*k+kx)*c+i])
						}
					}
				}
				out[(y*ow+z)*o+q] = s
			}
		}
	}
	return out, oh, ow
}

func refSynthetic(tensors []tbTensor, in []float64) []float64 {
	x, h, w := refConv(in, 8, 8, 3, tensors[1].f32, 4, 3, 2, 0, tensors[2].f32)
	alpha := tensors[7].f32
	for i := range x { // relu(x) + alpha·(x − |x|)
		x[i] = math.Max(x[i], 0) + float64(alpha[i%4])*(x[i]-math.Abs(x[i]))
	}
	x, h, w = refConv(x, h, w, 4, tensors[10].f32, 8, 3, 1, 2, tensors[11].f32)
	for i := range x {
		x[i] = math.Max(x[i], 0) + float64(tensors[13].f32[i%8])
	}
	y, _, _ := refConv(x, h, w, 8, tensors[15].f32, 8, 1, 1, 0, tensors[16].f32)
	for i := range y {
		y[i] = (math.Max(y[i], 0) + x[i]) * 0.5
	}
	return y
}

func runONNX(t *testing.T, model []byte, in []float64, h, w, c int) []float32 {
	t.Helper()
	net, err := gocv.ReadNetFromONNXBytes(model)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	data := make([]byte, 4*len(in))
	for y := 0; y < h; y++ {
		for z := 0; z < w; z++ {
			for ch := 0; ch < c; ch++ {
				binary.LittleEndian.PutUint32(data[4*((ch*h+y)*w+z):], math.Float32bits(float32(in[(y*w+z)*c+ch])))
			}
		}
	}
	blob, err := gocv.NewMatWithSizesFromBytes([]int{1, c, h, w}, gocv.MatTypeCV32F, data)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	net.SetInput(blob, "input")
	out := net.Forward("embedding")
	defer out.Close()
	v, err := out.DataPtrFloat32()
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), v...)
}

func TestSyntheticModel(t *testing.T) {
	tensors, ops := synthetic()
	data := buildTFLite(tensors, ops, []int32{0}, []int32{22})
	m, err := Read(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range m.OpCodes {
		names = append(names, c.Name())
	}
	if got := strings.Join(names, " "); got != "CONV_2D RELU ABS SUB MUL ADD DEPTHWISE_CONV_2D RESHAPE" {
		t.Errorf("operator codes read as %s", got)
	}
	sg := m.Subgraphs[0]
	if len(sg.Tensors) != len(tensors) || len(sg.Operators) != len(ops) || sg.Tensors[15].Name != "w2" ||
		len(sg.Tensors[19].Shape) != 0 || sg.Tensors[21].Type != typeInt32 || m.Description != "synthetic" {
		t.Fatalf("read back wrongly: %d tensors, %d operators", len(sg.Tensors), len(sg.Operators))
	}

	r := rand.New(rand.NewSource(2))
	in := make([]float64, 8*8*3)
	for i := range in {
		in[i] = r.Float64()*2 - 1
	}
	want := refSynthetic(tensors, in)
	for _, noFold := range []bool{false, true} {
		o := DefaultOptions()
		o.NoFold = noFold
		model, err := Convert(m, o)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Convert(m, o)
		if !bytes.Equal(model, again) {
			t.Error("two conversions of the same model differ")
		}
		if hasPRelu := bytes.Contains(model, []byte("PRelu")); hasPRelu == noFold {
			t.Errorf("NoFold %v: PRelu in the graph: %v", noFold, hasPRelu)
		}
		got := runONNX(t, model, in, 8, 8, 3)
		if len(got) != len(want) {
			t.Fatalf("NoFold %v: %d outputs, want %d", noFold, len(got), len(want))
		}
		var maxDiff float64
		for i := range got {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-want[i]))
		}
		t.Logf("NoFold %v: %d bytes, max |OpenCV − reference| %.2g", noFold, len(model), maxDiff)
		if maxDiff > 1e-4 {
			t.Errorf("NoFold %v: OpenCV's output differs from the reference by %g", noFold, maxDiff)
		}
	}
}

func TestConvertErrors(t *testing.T) {
	tensors, ops := synthetic()
	ops[10].code = 25 // SOFTMAX in place of the MUL
	m, err := Read(buildTFLite(tensors, ops, []int32{0}, []int32{22}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Convert(m, DefaultOptions())
	if err == nil || !strings.Contains(err.Error(), "operator 10 (SOFTMAX)") {
		t.Errorf("unsupported op: error %v, want one naming operator 10 (SOFTMAX)", err)
	}

	tensors, ops = synthetic()
	tensors[3].shape = []int32{2, 3, 3, 4} // not what SAME padding gives
	m, err = Read(buildTFLite(tensors, ops, []int32{0}, []int32{22}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err = Convert(m, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "operator 0 (CONV_2D)") {
		t.Errorf("wrong conv output shape: error %v", err)
	}

	good := buildTFLiteFrom(synthetic())
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)/2]},
		{"no identifier", append([]byte{8, 0, 0, 0, 'X', 'X', 'X', 'X'}, good[8:]...)},
		{"root past the end", append([]byte{0xff, 0xff, 0, 0}, good[4:]...)},
	} {
		if _, err := Read(c.data); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func buildTFLiteFrom(tensors []tbTensor, ops []tbOp) []byte {
	return buildTFLite(tensors, ops, []int32{0}, []int32{22})
}

// FuzzRead feeds the reader (and, when it accepts the input, the converter)
// malformed files: they must give errors, not panics or huge allocations.
func FuzzRead(f *testing.F) {
	good := buildTFLiteFrom(synthetic())
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte("\x08\x00\x00\x00TFL3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Read(data)
		if err != nil {
			return
		}
		if len(m.Subgraphs) == 0 {
			t.Fatal("a model without a subgraph was accepted")
		}
		_, _ = Convert(m, DefaultOptions())
	})
}
