package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Convert turns the first subgraph of a float TFLite model into an ONNX model
// (IR version 6, opset 11) for OpenCV's DNN module and ONNX Runtime:
//
//   - Activations are NCHW: the graph input is [1,C,H,W] (the TFLite input is
//     NHWC with any batch size; the ONNX graph has batch 1, and reshapes keep
//     the batch dimension as -1). Nothing is added before the first layer:
//     the caller normalises the pixels as the TFLite model expects.
//   - CONV_2D becomes Conv with the filter [O,H,W,I] transposed to OIHW;
//     DEPTHWISE_CONV_2D becomes a grouped Conv (group = input channels) with
//     the filter [1,H,W,C·M] as [C·M,1,H,W]. TF "SAME" padding becomes
//     explicit, possibly asymmetric, pads; the output size is checked against
//     the TFLite tensor's.
//   - ADD, SUB, MUL, RELU, ABS map one to one; a constant operand is
//     transposed to NCHW. RESHAPE goes through NHWC order unless the spatial
//     size is 1×1, where both orders agree. A fused RELU becomes Relu.
//   - relu(x) + c·(x − |x|), how TensorFlow writes PReLU, becomes
//     PRelu(x, slope = 2c): for x > 0 it is x + c·0 = x, for x < 0 it is
//     0 + c·2x = 2c·x. The four intermediate tensors must have no other reader.
//
// Anything else (other ops, quantised or sparse tensors, dynamic shapes) is an
// error naming the operator's index and op. The output is deterministic: the
// same model and options give the same bytes.
func Convert(m *Model, o Options) ([]byte, error) {
	c, err := newConverter(m, o)
	if err != nil {
		return nil, err
	}
	if err := c.convert(); err != nil {
		return nil, err
	}
	model := onnxModel{
		producerName:    "bordermatch-tflite2onnx",
		producerVersion: "1",
		doc:             "Converted from TFLite by bordermatch's models/tflite2onnx (TFLite description: " + m.Description + ")",
		graph:           c.g,
	}
	return model.marshal(), nil
}

// Options name the graph's input and output.
type Options struct {
	InputName  string // the graph input's name
	OutputName string // the graph output's name
	NoFold     bool   // keep relu(x)+c·(x−|x|) as five nodes instead of PRelu (for tests)
}

// DefaultOptions are the names Bordermatch's face model descriptors use.
func DefaultOptions() Options { return Options{InputName: "input", OutputName: "embedding"} }

type converter struct {
	m         *Model
	sg        *Subgraph
	o         Options
	g         onnxGraph
	names     []string // ONNX name of each TFLite tensor
	produced  []bool   // the tensor's value exists in the ONNX graph
	nchw      []bool   // the value is a 4-D activation in NCHW order
	producer  []int    // op writing each tensor, -1 for none
	readers   []int    // ops reading each tensor (graph outputs count as one)
	skip      []bool   // op folded into a later one
	prelu     map[int]preluMatch
	used      map[string]bool
	constDone map[string]bool
}

type preluMatch struct {
	x     int32     // the input tensor
	slope []float32 // 2c, one per channel or one for all
}

func newConverter(m *Model, o Options) (*converter, error) {
	if o.InputName == "" || o.OutputName == "" || o.InputName == o.OutputName {
		return nil, fmt.Errorf("the input and output need two different names")
	}
	sg := &m.Subgraphs[0]
	if len(sg.Inputs) != 1 || len(sg.Outputs) != 1 {
		return nil, fmt.Errorf("the model has %d inputs and %d outputs; one of each is supported", len(sg.Inputs), len(sg.Outputs))
	}
	n := len(sg.Tensors)
	c := &converter{m: m, sg: sg, o: o,
		names: make([]string, n), produced: make([]bool, n), nchw: make([]bool, n),
		producer: make([]int, n), readers: make([]int, n), skip: make([]bool, len(sg.Operators)),
		prelu: map[int]preluMatch{}, used: map[string]bool{}, constDone: map[string]bool{},
	}
	for i, t := range sg.Tensors {
		if t.Quantized || t.Sparse {
			return nil, fmt.Errorf("tensor %d (%s) is quantised or sparse: only float models are supported", i, t.Name)
		}
		c.producer[i] = -1
	}
	in, out := sg.Inputs[0], sg.Outputs[0]
	c.used[o.InputName], c.used[o.OutputName] = true, true
	c.names[in], c.names[out] = o.InputName, o.OutputName
	for i, t := range sg.Tensors {
		if int32(i) != in && int32(i) != out {
			c.names[i] = c.fresh(t.Name, i)
		}
	}
	for oi, op := range sg.Operators {
		for _, k := range op.Inputs {
			if k >= 0 {
				c.readers[k]++
			}
		}
		for _, k := range op.Outputs {
			if c.producer[k] >= 0 || int32(k) == in || c.isConst(k) {
				return nil, fmt.Errorf("operator %d (%s) writes tensor %d (%s), which is an input, a constant or written twice", oi, c.opName(oi), k, sg.Tensors[k].Name)
			}
			c.producer[k] = oi
		}
	}
	c.readers[out]++

	it := sg.Tensors[in]
	if it.Type != typeFloat32 || len(it.Shape) != 4 {
		return nil, fmt.Errorf("input tensor %d (%s) is %s %v: a float NHWC image is expected", in, it.Name, it.TypeName(), it.Shape)
	}
	for _, d := range it.Shape[1:] {
		if d <= 0 {
			return nil, fmt.Errorf("input tensor %d (%s) has a dynamic shape %v", in, it.Name, it.Shape)
		}
	}
	c.produced[in], c.nchw[in] = true, true
	c.g.name = "main"
	if sg.Name != "" {
		c.g.name = sg.Name
	}
	c.g.inputs = []onnxValueInfo{{name: o.InputName, elemType: dataTypeFloat,
		dims: []int64{1, int64(it.Shape[3]), int64(it.Shape[1]), int64(it.Shape[2])}}}
	return c, nil
}

// fresh gives an unused ONNX name for a TFLite tensor.
func (c *converter) fresh(base string, idx int) string {
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, base)
	if name == "" {
		name = fmt.Sprintf("t%d", idx)
	}
	root := name
	for k := 1; c.used[name]; k++ {
		name = fmt.Sprintf("%s_%d", root, k)
	}
	c.used[name] = true
	return name
}

func (c *converter) opName(oi int) string {
	return c.m.OpCodes[c.sg.Operators[oi].OpcodeIndex].Name()
}

func (c *converter) isConst(k int32) bool {
	t := c.sg.Tensors[k]
	return t.Buffer != 0 && len(c.m.Buffers[t.Buffer]) > 0
}

// elements is the number of elements of a static shape, or -1.
func elements(shape []int32) int {
	n := 1
	for _, d := range shape {
		if d <= 0 || n > math.MaxInt32/int(d) {
			return -1
		}
		n *= int(d)
	}
	return n
}

func (c *converter) constFloats(k int32) ([]float32, error) {
	t := c.sg.Tensors[k]
	if t.Type != typeFloat32 {
		return nil, fmt.Errorf("constant tensor %d (%s) is %s, not FLOAT32", k, t.Name, t.TypeName())
	}
	data := c.m.Buffers[t.Buffer]
	n := elements(t.Shape)
	if n < 0 || len(data) != 4*n {
		return nil, fmt.Errorf("constant tensor %d (%s) of shape %v has %d bytes", k, t.Name, t.Shape, len(data))
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return v, nil
}

func (c *converter) convert() error {
	if !c.o.NoFold {
		for oi := range c.sg.Operators {
			if c.m.OpCodes[c.sg.Operators[oi].OpcodeIndex].Builtin == opAdd {
				c.matchPRelu(oi)
			}
		}
	}
	for oi := range c.sg.Operators {
		if c.skip[oi] {
			continue
		}
		if err := c.convertOp(oi); err != nil {
			return fmt.Errorf("operator %d (%s): %w", oi, c.opName(oi), err)
		}
	}
	out := c.sg.Outputs[0]
	if !c.produced[out] {
		return fmt.Errorf("output tensor %d (%s) is not computed by any operator", out, c.sg.Tensors[out].Name)
	}
	ot := c.sg.Tensors[out]
	if ot.Type != typeFloat32 || len(ot.Shape) == 0 {
		return fmt.Errorf("output tensor %d (%s) is %s %v: a float tensor is expected", out, ot.Name, ot.TypeName(), ot.Shape)
	}
	dims := make([]int64, len(ot.Shape))
	for i, d := range ot.Shape {
		dims[i] = int64(d)
	}
	dims[0] = 1
	if c.nchw[out] {
		dims = []int64{1, dims[3], dims[1], dims[2]}
	}
	c.g.outputs = []onnxValueInfo{{name: c.o.OutputName, elemType: dataTypeFloat, dims: dims}}
	return nil
}

// matchPRelu recognises ADD(RELU(x), MUL(c, SUB(x, ABS(x)))) (operands of the
// ADD and the MUL in either order) at the ADD op oi.
func (c *converter) matchPRelu(oi int) {
	ops := c.sg.Operators
	add := ops[oi]
	if len(add.Inputs) != 2 || c.fused(oi) != actNone {
		return
	}
	only := func(k int32, want int32) (int, bool) { // the producer of k, if k is read once
		if k < 0 || c.readers[k] != 1 || c.producer[k] < 0 {
			return 0, false
		}
		p := c.producer[k]
		if c.m.OpCodes[ops[p].OpcodeIndex].Builtin != want || c.fused(p) != actNone || len(ops[p].Outputs) != 1 {
			return 0, false
		}
		return p, true
	}
	for _, pair := range [2][2]int32{{add.Inputs[0], add.Inputs[1]}, {add.Inputs[1], add.Inputs[0]}} {
		relu, ok1 := only(pair[0], opRelu)
		mul, ok2 := only(pair[1], opMul)
		if !ok1 || !ok2 || len(ops[relu].Inputs) != 1 || len(ops[mul].Inputs) != 2 {
			continue
		}
		x := ops[relu].Inputs[0]
		cst, s := ops[mul].Inputs[0], ops[mul].Inputs[1]
		if s >= 0 && c.isConst(s) {
			cst, s = s, cst
		}
		if cst < 0 || !c.isConst(cst) {
			continue
		}
		sub, ok := only(s, opSub)
		if !ok || len(ops[sub].Inputs) != 2 || ops[sub].Inputs[0] != x {
			continue
		}
		abs, ok := only(ops[sub].Inputs[1], opAbs)
		if !ok || len(ops[abs].Inputs) != 1 || ops[abs].Inputs[0] != x {
			continue
		}
		cv, err := c.constFloats(cst)
		if err != nil {
			continue
		}
		xs := c.sg.Tensors[x].Shape
		cs := c.sg.Tensors[cst].Shape
		perChannel := len(xs) > 0 && len(cv) == int(xs[len(xs)-1]) && len(cs) <= len(xs)
		for i := 0; i+1 < len(cs); i++ {
			perChannel = perChannel && cs[i] == 1
		}
		if len(cv) != 1 && !perChannel {
			continue
		}
		slope := make([]float32, len(cv))
		for i, v := range cv {
			slope[i] = 2 * v
		}
		c.prelu[oi] = preluMatch{x: x, slope: slope}
		c.skip[relu], c.skip[mul], c.skip[sub], c.skip[abs] = true, true, true, true
		return
	}
}

// fused is the fused activation of op oi (NONE for ops without one).
func (c *converter) fused(oi int) int8 {
	op := c.sg.Operators[oi]
	field := -1
	switch op.OptionsType {
	case optAdd, optMul, optSub, optFullyConnected:
		field = 0
	case optConv2D:
		field = 3
	case optDepthwiseConv2D:
		field = 4
	}
	if field < 0 {
		return actNone
	}
	v, err := op.Options.int8(field, actNone)
	if err != nil {
		return -1
	}
	return v
}

// options returns op oi's options table, checked to be of the union member
// want (an absent table reads as all defaults).
func (c *converter) options(oi int, want uint8) (table, error) {
	op := c.sg.Operators[oi]
	if op.OptionsType != 0 && op.OptionsType != want {
		return table{}, fmt.Errorf("options of union member %d, expected %d", op.OptionsType, want)
	}
	return op.Options, nil
}

// activation returns the ONNX name of an activation tensor read by an op.
func (c *converter) activation(k int32) (string, error) {
	if k < 0 {
		return "", fmt.Errorf("a required input is missing")
	}
	if c.isConst(k) {
		return "", fmt.Errorf("input tensor %d (%s) is a constant where an activation is expected", k, c.sg.Tensors[k].Name)
	}
	if !c.produced[k] {
		return "", fmt.Errorf("input tensor %d (%s) is read before it is computed", k, c.sg.Tensors[k].Name)
	}
	return c.names[k], nil
}

func (c *converter) initializer(t onnxTensor) string {
	if c.constDone[t.name] {
		return t.name
	}
	c.constDone[t.name] = true
	c.g.initializers = append(c.g.initializers, t)
	return t.name
}

// constName derives an initializer name from a TFLite tensor's name.
func (c *converter) constName(k int32, suffix string) string {
	base := c.names[k] + suffix
	if suffix == "" || c.constDone[base] {
		return base // its own name, or the same constant transformed the same way
	}
	if c.used[base] {
		base = c.fresh(base, int(k))
	}
	c.used[base] = true
	return base
}

func (c *converter) node(oi int, opType string, inputs []string, output string, attrs ...onnxAttr) {
	name := fmt.Sprintf("%s_%d", opType, oi)
	for k := 1; c.used[name]; k++ {
		name = fmt.Sprintf("%s_%d_%d", opType, oi, k)
	}
	c.used[name] = true
	c.g.nodes = append(c.g.nodes, onnxNode{name: name, opType: opType, inputs: inputs, outputs: []string{output}, attrs: attrs})
}

// finish writes op oi's main node and its fused activation, and marks the
// output tensor computed.
func (c *converter) finish(oi int, opType string, inputs []string, out int32, nchw bool, act int8, attrs ...onnxAttr) error {
	if nchw && len(c.sg.Tensors[out].Shape) != 4 {
		return fmt.Errorf("output tensor %d (%s) of shape %v is not 4-D", out, c.sg.Tensors[out].Name, c.sg.Tensors[out].Shape)
	}
	target := c.names[out]
	switch act {
	case actNone:
		c.node(oi, opType, inputs, target, attrs...)
	case actRelu:
		pre := c.fresh(target+"_pre", int(out))
		c.node(oi, opType, inputs, pre, attrs...)
		c.node(oi, "Relu", []string{pre}, target)
	case actRelu6:
		// Opset 11's Clip takes its bounds as inputs, which OpenCV 4.6's
		// importer rejects; MobileFaceNet has no ReLU6.
		return fmt.Errorf("fused RELU6 is not supported")
	default:
		return fmt.Errorf("fused activation %d is not supported", act)
	}
	c.produced[out], c.nchw[out] = true, nchw
	return nil
}

func (c *converter) convertOp(oi int) error {
	op := c.sg.Operators[oi]
	code := c.m.OpCodes[op.OpcodeIndex]
	if code.Custom != "" {
		return fmt.Errorf("custom operators are not supported")
	}
	if len(op.Outputs) != 1 {
		return fmt.Errorf("%d outputs; one is supported", len(op.Outputs))
	}
	out := op.Outputs[0]
	if m, ok := c.prelu[oi]; ok {
		x, err := c.activation(m.x)
		if err != nil {
			return err
		}
		dims := []int64{int64(len(m.slope))}
		if c.nchw[m.x] && len(m.slope) > 1 {
			dims = []int64{int64(len(m.slope)), 1, 1}
		}
		slope := c.initializer(floatTensor(c.constName(out, "_slope"), dims, m.slope))
		return c.finish(oi, "PRelu", []string{x, slope}, out, c.nchw[m.x], actNone)
	}
	switch code.Builtin {
	case opConv2D, opDepthwiseConv2D:
		return c.conv(oi, code.Builtin == opDepthwiseConv2D)
	case opAdd, opSub, opMul:
		return c.binary(oi, map[int32]string{opAdd: "Add", opSub: "Sub", opMul: "Mul"}[code.Builtin],
			map[int32]uint8{opAdd: optAdd, opSub: optSub, opMul: optMul}[code.Builtin])
	case opRelu, opAbs:
		if len(op.Inputs) != 1 {
			return fmt.Errorf("%d inputs, expected 1", len(op.Inputs))
		}
		x, err := c.activation(op.Inputs[0])
		if err != nil {
			return err
		}
		return c.finish(oi, map[int32]string{opRelu: "Relu", opAbs: "Abs"}[code.Builtin], []string{x}, out, c.nchw[op.Inputs[0]], actNone)
	case opReshape:
		return c.reshape(oi)
	}
	return fmt.Errorf("operator %s is not supported (supported: ADD, SUB, MUL, RELU, ABS, CONV_2D, DEPTHWISE_CONV_2D, RESHAPE)", code.Name())
}
