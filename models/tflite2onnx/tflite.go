package main

import (
	"fmt"
)

// The TFLite schema (tensorflow/lite/schema/schema.fbs), reduced to the tables
// and fields the converter reads. Field numbers are the fields' positions in
// their table in the schema, counting a union as two fields (its type, then
// its value), as flatc does.

// Model fields.
const (
	modelVersion       = 0
	modelOperatorCodes = 1
	modelSubgraphs     = 2
	modelDescription   = 3
	modelBuffers       = 4
)

// OperatorCode fields. builtin_code was a byte and is now
// deprecated_builtin_code; the int32 builtin_code was added last. TFLite takes
// the larger of the two, since writers of either era fill only one.
const (
	opcodeDeprecatedBuiltin = 0
	opcodeCustomCode        = 1
	opcodeVersion           = 2
	opcodeBuiltin           = 3
)

// SubGraph fields.
const (
	subgraphTensors   = 0
	subgraphInputs    = 1
	subgraphOutputs   = 2
	subgraphOperators = 3
	subgraphName      = 4
)

// Tensor fields.
const (
	tensorShape        = 0
	tensorType         = 1
	tensorBuffer       = 2
	tensorName         = 3
	tensorQuantization = 4
	tensorIsVariable   = 5
	tensorSparsity     = 6
)

// Buffer fields: data, or (for files over 2 GB) offset and size into the file.
const (
	bufferData   = 0
	bufferOffset = 1
	bufferSize   = 2
)

// Operator fields.
const (
	operatorOpcodeIndex    = 0
	operatorInputs         = 1
	operatorOutputs        = 2
	operatorOptionsType    = 3 // the BuiltinOptions union's type
	operatorOptions        = 4 // the BuiltinOptions union's table
	operatorCustomOptions  = 5
	operatorLargeOptionsTy = 10 // builtin_options_2 (ops added after 2023)
)

// TensorType values.
const (
	typeFloat32 = 0
	typeFloat16 = 1
	typeInt32   = 2
	typeUint8   = 3
	typeInt64   = 4
	typeInt8    = 9
)

var tensorTypeNames = map[int8]string{0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64",
	5: "STRING", 6: "BOOL", 7: "INT16", 8: "COMPLEX64", 9: "INT8", 10: "FLOAT64"}

// BuiltinOperator values of the ops the converter knows.
const (
	opAdd             = 0
	opAveragePool2D   = 1
	opConcatenation   = 2
	opConv2D          = 3
	opDepthwiseConv2D = 4
	opFullyConnected  = 9
	opL2Norm          = 11
	opMaxPool2D       = 17
	opMul             = 18
	opRelu            = 19
	opRelu6           = 21
	opReshape         = 22
	opPad             = 34
	opMean            = 40
	opSub             = 41
	opPRelu           = 54
	opAbs             = 101
)

var builtinNames = map[int32]string{
	0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
	6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 11: "L2_NORMALIZATION", 14: "LOGISTIC", 17: "MAX_POOL_2D",
	18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE", 25: "SOFTMAX", 28: "TANH", 32: "CUSTOM",
	34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV", 43: "SQUEEZE", 45: "STRIDED_SLICE",
	53: "CAST", 54: "PRELU", 55: "MAXIMUM", 57: "MINIMUM", 74: "SUM", 75: "SQRT", 76: "RSQRT",
	92: "SQUARE", 98: "LEAKY_RELU", 101: "ABS", 114: "QUANTIZE",
}

func builtinName(code int32) string {
	if n, ok := builtinNames[code]; ok {
		return n
	}
	return fmt.Sprintf("BUILTIN_%d", code)
}

// BuiltinOptions union member numbers (NONE is 0) of the options read here.
const (
	optConv2D          = 1
	optDepthwiseConv2D = 2
	optPool2D          = 5
	optFullyConnected  = 8
	optConcatenation   = 10
	optAdd             = 11
	optL2Norm          = 12
	optReshape         = 17
	optMul             = 21
	optPad             = 22
	optReducer         = 27
	optSub             = 28
	optAbs             = 79
)

// ActivationFunctionType values.
const (
	actNone  = 0
	actRelu  = 1
	actRelu6 = 3
)

// Padding values.
const (
	padSame  = 0
	padValid = 1
)

// Model is a TFLite model as far as the converter reads it.
type Model struct {
	Version     uint32
	Description string
	OpCodes     []OpCode
	Subgraphs   []Subgraph
	Buffers     [][]byte // the data of each buffer; nil when empty
}

// OpCode is an entry of the model's operator code table.
type OpCode struct {
	Builtin int32 // max(builtin_code, deprecated_builtin_code)
	Custom  string
	Version int32
}

// Name is the operator's name in the schema, or its custom code.
func (c OpCode) Name() string {
	if c.Custom != "" {
		return "CUSTOM:" + c.Custom
	}
	return builtinName(c.Builtin)
}

// Subgraph is a graph of tensors and operators.
type Subgraph struct {
	Name      string
	Tensors   []Tensor
	Inputs    []int32
	Outputs   []int32
	Operators []Operator
}

// Tensor is a tensor's description; its data is Model.Buffers[Buffer].
type Tensor struct {
	Name      string
	Shape     []int32
	Type      int8
	Buffer    uint32
	Quantized bool // has quantisation parameters
	Sparse    bool
}

// TypeName is the name of the tensor's element type.
func (t Tensor) TypeName() string {
	if n, ok := tensorTypeNames[t.Type]; ok {
		return n
	}
	return fmt.Sprintf("TYPE_%d", t.Type)
}

// Operator is one operation, in execution order.
type Operator struct {
	OpcodeIndex uint32
	Inputs      []int32 // -1: an optional input left out
	Outputs     []int32
	OptionsType uint8 // the BuiltinOptions union's member, 0 for none
	Options     table // its table (zero when absent)
	HasCustom   bool
}

// Read parses a TFLite flatbuffer. It checks every offset it follows and
// every index between the tables (operator codes, tensors, buffers), so a
// model it returns can be walked without further checks. Buffers refer into
// data.
func Read(data []byte) (*Model, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("tflite: file of %d bytes is too short", len(data))
	}
	if string(data[4:8]) != "TFL3" {
		return nil, fmt.Errorf("tflite: no TFL3 file identifier (got %q)", data[4:8])
	}
	f := newFbuf(data)
	root, err := f.deref(0)
	if err != nil {
		return nil, fmt.Errorf("tflite: root: %w", err)
	}
	mt, err := f.tableAt(root)
	if err != nil {
		return nil, fmt.Errorf("tflite: root: %w", err)
	}
	m := &Model{}
	if m.Version, err = mt.uint32(modelVersion, 0); err != nil {
		return nil, fmt.Errorf("tflite: model version: %w", err)
	}
	if m.Description, err = mt.string(modelDescription); err != nil {
		return nil, fmt.Errorf("tflite: model description: %w", err)
	}

	codes, err := mt.tables(modelOperatorCodes)
	if err != nil {
		return nil, fmt.Errorf("tflite: operator codes: %w", err)
	}
	for i, ct := range codes {
		c, err := readOpCode(ct)
		if err != nil {
			return nil, fmt.Errorf("tflite: operator code %d: %w", i, err)
		}
		m.OpCodes = append(m.OpCodes, c)
	}

	bufs, err := mt.tables(modelBuffers)
	if err != nil {
		return nil, fmt.Errorf("tflite: buffers: %w", err)
	}
	for i, bt := range bufs {
		b, err := readBuffer(f, bt)
		if err != nil {
			return nil, fmt.Errorf("tflite: buffer %d: %w", i, err)
		}
		m.Buffers = append(m.Buffers, b)
	}

	sgs, err := mt.tables(modelSubgraphs)
	if err != nil {
		return nil, fmt.Errorf("tflite: subgraphs: %w", err)
	}
	if len(sgs) == 0 {
		return nil, fmt.Errorf("tflite: the model has no subgraph")
	}
	for i, st := range sgs {
		sg, err := readSubgraph(m, st)
		if err != nil {
			return nil, fmt.Errorf("tflite: subgraph %d: %w", i, err)
		}
		m.Subgraphs = append(m.Subgraphs, sg)
	}
	return m, nil
}

func readOpCode(t table) (OpCode, error) {
	var c OpCode
	dep, err := t.int8(opcodeDeprecatedBuiltin, 0)
	if err != nil {
		return c, err
	}
	if c.Builtin, err = t.int32(opcodeBuiltin, 0); err != nil {
		return c, err
	}
	if int32(dep) > c.Builtin {
		c.Builtin = int32(dep)
	}
	if c.Custom, err = t.string(opcodeCustomCode); err != nil {
		return c, err
	}
	if c.Version, err = t.int32(opcodeVersion, 1); err != nil {
		return c, err
	}
	return c, nil
}

func readBuffer(f *fbuf, t table) ([]byte, error) {
	data, err := t.bytes(bufferData)
	if err != nil || data != nil {
		return data, err
	}
	off, err := t.uint64(bufferOffset, 0)
	if err != nil {
		return nil, err
	}
	size, err := t.uint64(bufferSize, 0)
	if err != nil {
		return nil, err
	}
	if off <= 1 || size == 0 { // offset 1 is the converter's "not set yet" marker
		return nil, nil
	}
	if off > uint64(len(f.b)) || size > uint64(len(f.b))-off {
		return nil, fmt.Errorf("data at offset %d, size %d, lies outside the file (%d bytes)", off, size, len(f.b))
	}
	if int(size) > f.budget {
		return nil, errBudget
	}
	f.budget -= int(size)
	return f.b[off : off+size : off+size], nil
}

func readSubgraph(m *Model, st table) (Subgraph, error) {
	var sg Subgraph
	var err error
	if sg.Name, err = st.string(subgraphName); err != nil {
		return sg, fmt.Errorf("name: %w", err)
	}
	tts, err := st.tables(subgraphTensors)
	if err != nil {
		return sg, fmt.Errorf("tensors: %w", err)
	}
	for i, tt := range tts {
		t, err := readTensor(tt)
		if err != nil {
			return sg, fmt.Errorf("tensor %d: %w", i, err)
		}
		if int64(t.Buffer) >= int64(len(m.Buffers)) && t.Buffer != 0 {
			return sg, fmt.Errorf("tensor %d (%s): buffer %d does not exist (%d buffers)", i, t.Name, t.Buffer, len(m.Buffers))
		}
		sg.Tensors = append(sg.Tensors, t)
	}
	checkIdx := func(what string, idx []int32, optional bool) error {
		for _, k := range idx {
			if optional && k == -1 {
				continue
			}
			if k < 0 || int(k) >= len(sg.Tensors) {
				return fmt.Errorf("%s refers to tensor %d (%d tensors)", what, k, len(sg.Tensors))
			}
		}
		return nil
	}
	if sg.Inputs, err = st.int32s(subgraphInputs); err != nil {
		return sg, fmt.Errorf("inputs: %w", err)
	}
	if sg.Outputs, err = st.int32s(subgraphOutputs); err != nil {
		return sg, fmt.Errorf("outputs: %w", err)
	}
	if err := checkIdx("an input", sg.Inputs, false); err != nil {
		return sg, err
	}
	if err := checkIdx("an output", sg.Outputs, false); err != nil {
		return sg, err
	}
	ots, err := st.tables(subgraphOperators)
	if err != nil {
		return sg, fmt.Errorf("operators: %w", err)
	}
	for i, ot := range ots {
		op, err := readOperator(ot)
		if err != nil {
			return sg, fmt.Errorf("operator %d: %w", i, err)
		}
		if int64(op.OpcodeIndex) >= int64(len(m.OpCodes)) {
			return sg, fmt.Errorf("operator %d: operator code %d does not exist (%d codes)", i, op.OpcodeIndex, len(m.OpCodes))
		}
		name := m.OpCodes[op.OpcodeIndex].Name()
		if err := checkIdx(fmt.Sprintf("operator %d (%s): an input", i, name), op.Inputs, true); err != nil {
			return sg, err
		}
		if err := checkIdx(fmt.Sprintf("operator %d (%s): an output", i, name), op.Outputs, false); err != nil {
			return sg, err
		}
		sg.Operators = append(sg.Operators, op)
	}
	return sg, nil
}

func readTensor(t table) (Tensor, error) {
	var r Tensor
	var err error
	if r.Shape, err = t.int32s(tensorShape); err != nil {
		return r, fmt.Errorf("shape: %w", err)
	}
	if r.Type, err = t.int8(tensorType, 0); err != nil {
		return r, err
	}
	if r.Buffer, err = t.uint32(tensorBuffer, 0); err != nil {
		return r, err
	}
	if r.Name, err = t.string(tensorName); err != nil {
		return r, fmt.Errorf("name: %w", err)
	}
	var p int
	if p, err = t.field(tensorQuantization); err != nil {
		return r, err
	}
	if p != 0 {
		// Present but possibly empty: an empty QuantizationParameters is
		// what converters write for float tensors. Quantised means scales.
		q, ok, err := t.subTable(tensorQuantization)
		if err != nil {
			return r, fmt.Errorf("quantization: %w", err)
		}
		if ok {
			_, n, err := q.vector(2, 4) // scale:[float]
			if err != nil {
				return r, fmt.Errorf("quantization: %w", err)
			}
			r.Quantized = n > 0
		}
	}
	if p, err = t.field(tensorSparsity); err != nil {
		return r, err
	}
	r.Sparse = p != 0
	return r, nil
}

func readOperator(t table) (Operator, error) {
	var op Operator
	var err error
	if op.OpcodeIndex, err = t.uint32(operatorOpcodeIndex, 0); err != nil {
		return op, err
	}
	if op.Inputs, err = t.int32s(operatorInputs); err != nil {
		return op, fmt.Errorf("inputs: %w", err)
	}
	if op.Outputs, err = t.int32s(operatorOutputs); err != nil {
		return op, fmt.Errorf("outputs: %w", err)
	}
	if op.OptionsType, err = t.uint8(operatorOptionsType, 0); err != nil {
		return op, err
	}
	if op.OptionsType != 0 {
		o, ok, err := t.subTable(operatorOptions)
		if err != nil {
			return op, fmt.Errorf("options: %w", err)
		}
		if ok {
			op.Options = o
		}
	}
	p, err := t.field(operatorCustomOptions)
	if err != nil {
		return op, err
	}
	op.HasCustom = p != 0
	return op, nil
}
