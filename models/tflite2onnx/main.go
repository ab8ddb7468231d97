// Command tflite2onnx converts a float TFLite model (the MobileFaceNet that
// make models builds from) into an ONNX model that OpenCV's DNN module runs.
//
//	go run ./models/tflite2onnx -in MobileFaceNet.tflite -out mobilefacenet-192.onnx
//	go run ./models/tflite2onnx -in MobileFaceNet.tflite -dump
//
// See convert.go for what it converts and how.
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

func main() {
	in := flag.String("in", "", "the TFLite model to read")
	out := flag.String("out", "", "the ONNX model to write")
	dump := flag.Bool("dump", false, "list the model's tensors and operators instead of converting it")
	flag.Parse()
	if *in == "" || (*out == "" && !*dump) || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: tflite2onnx -in MODEL.tflite (-out MODEL.onnx | -dump)")
		os.Exit(2)
	}
	if err := run(*in, *out, *dump, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tflite2onnx:", err)
		os.Exit(1)
	}
}

func run(in, out string, dump bool, w io.Writer) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := Read(data)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if dump {
		Dump(w, m)
		return nil
	}
	onnx, err := Convert(m, DefaultOptions())
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, onnx, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(w, "tflite2onnx: wrote %s (%d bytes, SHA-256 %x) in %v\n", out, len(onnx), sha256.Sum256(onnx), time.Since(start).Round(time.Millisecond))
	return nil
}

// Dump lists the model's operator codes and its first subgraph's operators
// with the shapes of their tensors.
func Dump(w io.Writer, m *Model) {
	fmt.Fprintf(w, "schema version %d, %d buffers, description %q\n", m.Version, len(m.Buffers), m.Description)
	for i, c := range m.OpCodes {
		fmt.Fprintf(w, "opcode %d: %s v%d\n", i, c.Name(), c.Version)
	}
	for si, sg := range m.Subgraphs {
		fmt.Fprintf(w, "subgraph %d %q: %d tensors, inputs %v, outputs %v\n", si, sg.Name, len(sg.Tensors), sg.Inputs, sg.Outputs)
		for _, k := range append(append([]int32{}, sg.Inputs...), sg.Outputs...) {
			t := sg.Tensors[k]
			fmt.Fprintf(w, "  tensor %d %q %s %v\n", k, t.Name, t.TypeName(), t.Shape)
		}
		counts := map[string]int{}
		for oi, op := range sg.Operators {
			name := m.OpCodes[op.OpcodeIndex].Name()
			counts[name]++
			fmt.Fprintf(w, "  op %d %s", oi, name)
			for _, k := range op.Inputs {
				if k < 0 {
					fmt.Fprint(w, " -")
					continue
				}
				t := sg.Tensors[k]
				c := ""
				if t.Buffer != 0 && len(m.Buffers[t.Buffer]) > 0 {
					c = "const"
				}
				fmt.Fprintf(w, " %d%v%s", k, t.Shape, c)
			}
			fmt.Fprint(w, " ->")
			for _, k := range op.Outputs {
				fmt.Fprintf(w, " %d%v %q", k, sg.Tensors[k].Shape, sg.Tensors[k].Name)
			}
			fmt.Fprintf(w, " opts=%d\n", op.OptionsType)
		}
		names := make([]string, 0, len(counts))
		for name := range counts {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(w, "  %s ×%d\n", name, counts[name])
		}
	}
}
