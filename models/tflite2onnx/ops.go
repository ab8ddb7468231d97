package main

// The conversion of each TFLite operator (Convert, convert.go, drives it).

import "fmt"

// samePads gives TensorFlow's "SAME" padding of one dimension: the output is
// ceil(in/stride) and any odd padding goes after.
func samePads(in, k, stride, dil int) (before, after, out int) {
	out = (in + stride - 1) / stride
	eff := (k-1)*dil + 1
	total := (out-1)*stride + eff - in
	if total < 0 {
		total = 0
	}
	return total / 2, total - total/2, out
}

func (c *converter) conv(oi int, depthwise bool) error {
	op := c.sg.Operators[oi]
	if len(op.Inputs) < 2 || len(op.Inputs) > 3 {
		return fmt.Errorf("%d inputs, expected 2 or 3", len(op.Inputs))
	}
	xk, wk := op.Inputs[0], op.Inputs[1]
	x, err := c.activation(xk)
	if err != nil {
		return err
	}
	xs, os := c.sg.Tensors[xk].Shape, c.sg.Tensors[op.Outputs[0]].Shape
	if !c.nchw[xk] || len(xs) != 4 || len(os) != 4 {
		return fmt.Errorf("input %v and output %v must be 4-D images", xs, os)
	}
	if wk < 0 || !c.isConst(wk) {
		return fmt.Errorf("the filter must be a constant")
	}
	w, err := c.constFloats(wk)
	if err != nil {
		return err
	}
	ws := c.sg.Tensors[wk].Shape
	if len(ws) != 4 {
		return fmt.Errorf("filter shape %v is not 4-D", ws)
	}
	want := optConv2D
	fPad, fStrideW, fStrideH, fDilW, fDilH := 0, 1, 2, 4, 5
	if depthwise {
		want = optDepthwiseConv2D
		fPad, fStrideW, fStrideH, fDilW, fDilH = 0, 1, 2, 5, 6
	}
	opts, err := c.options(oi, uint8(want))
	if err != nil {
		return err
	}
	var vals [5]int32
	for i, f := range []int{fStrideW, fStrideH, fDilW, fDilH} {
		def := int32(1)
		if vals[i], err = opts.int32(f, def); err != nil {
			return err
		}
		if vals[i] < 1 || vals[i] > 1<<16 {
			return fmt.Errorf("stride or dilation %d is out of range", vals[i])
		}
	}
	strideW, strideH, dilW, dilH := int(vals[0]), int(vals[1]), int(vals[2]), int(vals[3])
	padding, err := opts.int8(fPad, padSame)
	if err != nil {
		return err
	}
	inC := int(xs[3])
	outC, kh, kw := int(ws[0]), int(ws[1]), int(ws[2])
	var wt []float32
	var wdims []int64
	group := int64(1)
	if depthwise {
		// [1,KH,KW,C·M] → [C·M,1,KH,KW]; output channel o reads input channel o/M.
		outC = int(ws[3])
		if ws[0] != 1 || inC <= 0 || outC%inC != 0 {
			return fmt.Errorf("depthwise filter %v does not fit %d input channels", ws, inC)
		}
		kh, kw = int(ws[1]), int(ws[2])
		wt = make([]float32, len(w))
		for o := 0; o < outC; o++ {
			for y := 0; y < kh; y++ {
				for z := 0; z < kw; z++ {
					wt[(o*kh+y)*kw+z] = w[(y*kw+z)*outC+o]
				}
			}
		}
		wdims = []int64{int64(outC), 1, int64(kh), int64(kw)}
		group = int64(inC)
	} else {
		// [O,KH,KW,I] → [O,I,KH,KW].
		if int(ws[3]) != inC {
			return fmt.Errorf("filter %v does not fit %d input channels", ws, inC)
		}
		wt = make([]float32, len(w))
		for o := 0; o < outC; o++ {
			for y := 0; y < kh; y++ {
				for z := 0; z < kw; z++ {
					for i := 0; i < inC; i++ {
						wt[((o*inC+i)*kh+y)*kw+z] = w[((o*kh+y)*kw+z)*inC+i]
					}
				}
			}
		}
		wdims = []int64{int64(outC), int64(inC), int64(kh), int64(kw)}
	}
	if int(os[3]) != outC {
		return fmt.Errorf("output %v does not have the filter's %d channels", os, outC)
	}
	var pt, pb, pl, pr, oh, ow int
	switch padding {
	case padSame:
		pt, pb, oh = samePads(int(xs[1]), kh, strideH, dilH)
		pl, pr, ow = samePads(int(xs[2]), kw, strideW, dilW)
	case padValid:
		oh = (int(xs[1])-((kh-1)*dilH+1))/strideH + 1
		ow = (int(xs[2])-((kw-1)*dilW+1))/strideW + 1
	default:
		return fmt.Errorf("padding %d is not supported", padding)
	}
	if oh != int(os[1]) || ow != int(os[2]) {
		return fmt.Errorf("computed output %dx%d, but the model says %v", oh, ow, os)
	}
	inputs := []string{x, c.initializer(floatTensor(c.constName(wk, "_oihw"), wdims, wt))}
	if len(op.Inputs) == 3 && op.Inputs[2] >= 0 {
		bk := op.Inputs[2]
		if !c.isConst(bk) {
			return fmt.Errorf("the bias must be a constant")
		}
		b, err := c.constFloats(bk)
		if err != nil {
			return err
		}
		if len(b) != outC {
			return fmt.Errorf("bias of %d values for %d channels", len(b), outC)
		}
		inputs = append(inputs, c.initializer(floatTensor(c.constName(bk, ""), []int64{int64(outC)}, b)))
	}
	act := c.fused(oi)
	return c.finish(oi, "Conv", inputs, op.Outputs[0], true, act,
		intsAttr("dilations", []int64{int64(dilH), int64(dilW)}),
		intAttr("group", group),
		intsAttr("kernel_shape", []int64{int64(kh), int64(kw)}),
		intsAttr("pads", []int64{int64(pt), int64(pl), int64(pb), int64(pr)}),
		intsAttr("strides", []int64{int64(strideH), int64(strideW)}))
}

// binary converts ADD, SUB and MUL. A constant operand of an NCHW activation
// is broadcast NHWC-style (right-aligned) and transposed to [C,H,W].
func (c *converter) binary(oi int, opType string, want uint8) error {
	op := c.sg.Operators[oi]
	if len(op.Inputs) != 2 {
		return fmt.Errorf("%d inputs, expected 2", len(op.Inputs))
	}
	if _, err := c.options(oi, want); err != nil {
		return err
	}
	act := c.fused(oi)
	a, b := op.Inputs[0], op.Inputs[1]
	if a < 0 || b < 0 {
		return fmt.Errorf("a required input is missing")
	}
	if c.isConst(a) && c.isConst(b) {
		return fmt.Errorf("both inputs are constants")
	}
	var act0 int32 = a
	if c.isConst(a) {
		act0 = b
	}
	if _, err := c.activation(act0); err != nil {
		return err
	}
	nchw := c.nchw[act0]
	names := make([]string, 2)
	for i, k := range []int32{a, b} {
		if !c.isConst(k) {
			n, err := c.activation(k)
			if err != nil {
				return err
			}
			if c.nchw[k] != nchw {
				return fmt.Errorf("operands in different layouts")
			}
			names[i] = n
			continue
		}
		v, err := c.constFloats(k)
		if err != nil {
			return err
		}
		shape := c.sg.Tensors[k].Shape
		if !nchw || len(v) == 1 {
			dims := make([]int64, len(shape))
			for j, d := range shape {
				dims[j] = int64(d)
			}
			names[i] = c.initializer(floatTensor(c.constName(k, ""), dims, v))
			continue
		}
		if len(shape) > 4 {
			return fmt.Errorf("constant %v has more than 4 dimensions", shape)
		}
		s4 := []int{1, 1, 1, 1}
		for j := range shape {
			s4[4-len(shape)+j] = int(shape[j])
		}
		if s4[0] != 1 {
			return fmt.Errorf("constant %v varies over the batch", shape)
		}
		h, w, ch := s4[1], s4[2], s4[3]
		t := make([]float32, len(v))
		for y := 0; y < h; y++ {
			for z := 0; z < w; z++ {
				for q := 0; q < ch; q++ {
					t[(q*h+y)*w+z] = v[(y*w+z)*ch+q]
				}
			}
		}
		names[i] = c.initializer(floatTensor(c.constName(k, "_chw"), []int64{int64(ch), int64(h), int64(w)}, t))
	}
	return c.finish(oi, opType, names, op.Outputs[0], nchw, act)
}

// reshape converts RESHAPE to the output tensor's static shape, the batch
// dimension left free (-1). An NCHW input larger than 1×1 is transposed to
// NHWC first so that elements keep TFLite's order; a 4-D output is made NCHW.
func (c *converter) reshape(oi int) error {
	op := c.sg.Operators[oi]
	if len(op.Inputs) < 1 {
		return fmt.Errorf("no input")
	}
	xk, out := op.Inputs[0], op.Outputs[0]
	x, err := c.activation(xk)
	if err != nil {
		return err
	}
	xs, os := c.sg.Tensors[xk].Shape, c.sg.Tensors[out].Shape
	if len(xs) == 0 || len(os) == 0 || elements(xs) < 0 || elements(xs) != elements(os) || xs[0] != os[0] {
		return fmt.Errorf("reshape from %v to %v is not supported (static shapes with the batch first are)", xs, os)
	}
	if c.nchw[xk] && !(xs[1] == 1 && xs[2] == 1) {
		t := c.fresh(c.names[xk]+"_nhwc", int(xk))
		c.node(oi, "Transpose", []string{x}, t, intsAttr("perm", []int64{0, 2, 3, 1}))
		x = t
	}
	shape := make([]int64, len(os))
	for i, d := range os {
		shape[i] = int64(d)
	}
	shape[0] = -1
	nchw := false
	if len(os) == 4 && os[1] == 1 && os[2] == 1 {
		shape = []int64{-1, int64(os[3]), 1, 1}
		nchw = true
	}
	sname := c.initializer(int64Tensor(c.constName(out, "_shape"), []int64{int64(len(shape))}, shape))
	if len(os) == 4 && !nchw {
		t := c.fresh(c.names[out]+"_nhwc", int(out))
		c.node(oi, "Reshape", []string{x, sname}, t)
		c.node(oi, "Transpose", []string{t}, c.names[out], intsAttr("perm", []int64{0, 3, 1, 2}))
		c.produced[out], c.nchw[out] = true, true
		return nil
	}
	return c.finish(oi, "Reshape", []string{x, sname}, out, nchw, actNone)
}
