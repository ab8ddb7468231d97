package main

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// A hand-written encoder for the subset of onnx.proto (github.com/onnx/onnx,
// onnx/onnx.proto) the converter writes. Field numbers are onnx.proto's.
// Repeated scalars are written unpacked, as onnx.proto (proto2, no
// [packed=true]) declares them. Fields are written in a fixed order, so the
// same graph always gives the same bytes.

// ModelProto fields.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8
)

// OperatorSetIdProto fields.
const (
	opsetDomain  = 1
	opsetVersion = 2
)

// GraphProto fields.
const (
	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphDocString   = 10
	graphInput       = 11
	graphOutput      = 12
)

// NodeProto fields.
const (
	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
)

// AttributeProto fields and AttributeType values.
const (
	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrT      = 5
	attrFloats = 7
	attrInts   = 8
	attrType   = 20

	attrTypeFloat  = 1
	attrTypeInt    = 2
	attrTypeTensor = 4
	attrTypeFloats = 6
	attrTypeInts   = 7
)

// TensorProto fields and DataType values.
const (
	tensorProtoDims     = 1
	tensorProtoDataType = 2
	tensorProtoName     = 8
	tensorProtoRawData  = 9

	dataTypeFloat = 1
	dataTypeInt64 = 7
)

// ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto and
// TensorShapeProto.Dimension fields.
const (
	valueInfoName    = 1
	valueInfoType    = 2
	typeTensorType   = 1
	typeElemType     = 1
	typeShape        = 2
	shapeDim         = 1
	dimensionValue   = 1
	onnxIRVersion    = 6
	onnxOpsetVersion = 11
)

type onnxTensor struct {
	name     string
	dims     []int64
	dataType int32
	raw      []byte // little-endian elements
}

func floatTensor(name string, dims []int64, v []float32) onnxTensor {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return onnxTensor{name: name, dims: dims, dataType: dataTypeFloat, raw: raw}
}

func int64Tensor(name string, dims []int64, v []int64) onnxTensor {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return onnxTensor{name: name, dims: dims, dataType: dataTypeInt64, raw: raw}
}

type onnxAttr struct {
	name   string
	typ    int
	f      float32
	i      int64
	floats []float32
	ints   []int64
	t      *onnxTensor
}

func intAttr(name string, v int64) onnxAttr { return onnxAttr{name: name, typ: attrTypeInt, i: v} }
func intsAttr(name string, v []int64) onnxAttr {
	return onnxAttr{name: name, typ: attrTypeInts, ints: v}
}
func floatAttr(name string, v float32) onnxAttr {
	return onnxAttr{name: name, typ: attrTypeFloat, f: v}
}

type onnxNode struct {
	name    string
	opType  string
	inputs  []string
	outputs []string
	attrs   []onnxAttr
}

type onnxValueInfo struct {
	name     string
	elemType int32
	dims     []int64
}

type onnxGraph struct {
	name         string
	doc          string
	nodes        []onnxNode
	initializers []onnxTensor
	inputs       []onnxValueInfo
	outputs      []onnxValueInfo
}

type onnxModel struct {
	producerName    string
	producerVersion string
	doc             string
	graph           onnxGraph
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func appendVarint(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendFloat(b []byte, num protowire.Number, f float32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(f))
}

func (t *onnxTensor) marshal() []byte {
	var b []byte
	for _, d := range t.dims {
		b = appendVarint(b, tensorProtoDims, d)
	}
	b = appendVarint(b, tensorProtoDataType, int64(t.dataType))
	b = appendString(b, tensorProtoName, t.name)
	b = protowire.AppendTag(b, tensorProtoRawData, protowire.BytesType)
	return protowire.AppendBytes(b, t.raw)
}

func (a *onnxAttr) marshal() []byte {
	var b []byte
	b = appendString(b, attrName, a.name)
	switch a.typ {
	case attrTypeFloat:
		b = appendFloat(b, attrF, a.f)
	case attrTypeInt:
		b = appendVarint(b, attrI, a.i)
	case attrTypeTensor:
		b = appendMessage(b, attrT, a.t.marshal())
	case attrTypeFloats:
		for _, f := range a.floats {
			b = appendFloat(b, attrFloats, f)
		}
	case attrTypeInts:
		for _, v := range a.ints {
			b = appendVarint(b, attrInts, v)
		}
	}
	return appendVarint(b, attrType, int64(a.typ))
}

func (n *onnxNode) marshal() []byte {
	var b []byte
	for _, s := range n.inputs {
		b = appendString(b, nodeInput, s)
	}
	for _, s := range n.outputs {
		b = appendString(b, nodeOutput, s)
	}
	b = appendString(b, nodeName, n.name)
	b = appendString(b, nodeOpType, n.opType)
	for i := range n.attrs {
		b = appendMessage(b, nodeAttribute, n.attrs[i].marshal())
	}
	return b
}

func (v *onnxValueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.dims {
		shape = appendMessage(shape, shapeDim, appendVarint(nil, dimensionValue, d))
	}
	tt := appendVarint(nil, typeElemType, int64(v.elemType))
	tt = appendMessage(tt, typeShape, shape)
	b := appendString(nil, valueInfoName, v.name)
	return appendMessage(b, valueInfoType, appendMessage(nil, typeTensorType, tt))
}

func (g *onnxGraph) marshal() []byte {
	var b []byte
	for i := range g.nodes {
		b = appendMessage(b, graphNode, g.nodes[i].marshal())
	}
	b = appendString(b, graphName, g.name)
	for i := range g.initializers {
		b = appendMessage(b, graphInitializer, g.initializers[i].marshal())
	}
	if g.doc != "" {
		b = appendString(b, graphDocString, g.doc)
	}
	for i := range g.inputs {
		b = appendMessage(b, graphInput, g.inputs[i].marshal())
	}
	for i := range g.outputs {
		b = appendMessage(b, graphOutput, g.outputs[i].marshal())
	}
	return b
}

func (m *onnxModel) marshal() []byte {
	var b []byte
	b = appendVarint(b, modelIRVersion, onnxIRVersion)
	b = appendString(b, modelProducerName, m.producerName)
	b = appendString(b, modelProducerVersion, m.producerVersion)
	if m.doc != "" {
		b = appendString(b, modelDocString, m.doc)
	}
	b = appendMessage(b, modelGraph, m.graph.marshal())
	opset := appendString(nil, opsetDomain, "")
	opset = appendVarint(opset, opsetVersion, onnxOpsetVersion)
	return appendMessage(b, modelOpsetImport, opset)
}
