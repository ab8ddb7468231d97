package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Gate configuration defaults and limits.
const (
	DefaultLookback     = 2 * time.Second
	MaxLookback         = 10 * time.Second
	DefaultGateCaptures = 2
	MaxGateCaptures     = 64
	// MaxGateFPS bounds a gate's replay rate.
	MaxGateFPS = 1000
	// A gate's wait for each finger on its scanner.
	DefaultFingerTimeout = 10 * time.Second
	MaxFingerTimeout     = time.Minute
)

// DefaultGateFingers is what a gate with a scanner asks for when its
// configuration names no fingers.
var DefaultGateFingers = []string{"right-index"}

// GateConfig is one gate of matchd's configuration (--gates FILE, --gate
// ID=SOURCE). A zero FPS, Lookback or MaxCaptures takes the default; a
// negative one is refused.
type GateConfig struct {
	// ID names the gate in requests: letters, digits, '.', '_', '-'.
	ID string `yaml:"id" json:"id"`
	// Source is the camera, as capture.Open takes it: /dev/video0, v4l2:0,
	// rtsp://…, http(s)://…, a video file, folder:DIR or a directory.
	Source string `yaml:"source" json:"source"`
	// Scanner is the gate's fingerprint scanner, as fprint.OpenScanner
	// takes it: "libfprint:NAME" (an index "0", a device id, a driver
	// "uru4000" or a name; "libfprint:" is the first scanner giving
	// images) or "folder:DIR" (scans replayed in name order, looping).
	// Empty: the gate has none.
	Scanner string `yaml:"scanner,omitempty" json:"scanner,omitempty"`
	// Fingers are the positions the gate asks for, in order, when a call
	// asks for fingers without naming them ("right-index", "left-thumb" …;
	// default right-index). Only with a scanner.
	Fingers []string `yaml:"fingers,omitempty" json:"fingers,omitempty"`
	// FingerTimeout is the wait for each finger (default 10s, at most 1m).
	FingerTimeout time.Duration `yaml:"finger_timeout,omitempty" json:"finger_timeout,omitempty"`
	// ScannerDPI is the scanner's resolution, over what the driver or the
	// file declares (libfprint's drivers mostly declare none: 500 is
	// assumed). 0: theirs.
	ScannerDPI int `yaml:"scanner_dpi,omitempty" json:"scanner_dpi,omitempty"`
	// FPS is the replay rate of a folder or file (capture.Options.FPS);
	// 0: the file's own rate, 10 for folders.
	FPS float64 `yaml:"fps,omitempty" json:"fps,omitempty"`
	// Loop replays a file or folder from its start when it ends; default
	// true (a gate with a finite source would otherwise stop working).
	Loop *bool `yaml:"loop,omitempty" json:"loop,omitempty"`
	// Lookback is how long frames are kept for captures (default 2s, at
	// most 10s).
	Lookback time.Duration `yaml:"lookback,omitempty" json:"lookback,omitempty"`
	// MaxCaptures caps the captures running at once on the gate (default
	// 2, at most 64); more are refused with ResourceExhausted.
	MaxCaptures int `yaml:"max_captures,omitempty" json:"max_captures,omitempty"`
}

var gateIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Validate checks the gate's settings; the error names the gate and the
// bad field.
func (c *GateConfig) Validate() error {
	if !gateIDPattern.MatchString(c.ID) {
		return fmt.Errorf("gate id %q: want 1 to 64 letters, digits, '.', '_' or '-'", c.ID)
	}
	if strings.TrimSpace(c.Source) == "" {
		return fmt.Errorf("gate %s: source: none given", c.ID)
	}
	if err := c.validateScanner(); err != nil {
		return err
	}
	if !(c.FPS >= 0 && c.FPS <= MaxGateFPS) {
		return fmt.Errorf("gate %s: fps %v outside 0..%d (0: the source's own rate)", c.ID, c.FPS, MaxGateFPS)
	}
	if c.Lookback < 0 || c.Lookback > MaxLookback {
		return fmt.Errorf("gate %s: lookback %v outside 0..%v (0: the default, %v)", c.ID, c.Lookback, MaxLookback, DefaultLookback)
	}
	if c.MaxCaptures < 0 || c.MaxCaptures > MaxGateCaptures {
		return fmt.Errorf("gate %s: max_captures %d outside 0..%d (0: the default, %d)", c.ID, c.MaxCaptures, MaxGateCaptures, DefaultGateCaptures)
	}
	return nil
}

// validateScanner checks the scanner settings.
func (c *GateConfig) validateScanner() error {
	if c.Scanner == "" {
		switch {
		case len(c.Fingers) > 0:
			return fmt.Errorf("gate %s: fingers: set without a scanner", c.ID)
		case c.FingerTimeout != 0:
			return fmt.Errorf("gate %s: finger_timeout: set without a scanner", c.ID)
		case c.ScannerDPI != 0:
			return fmt.Errorf("gate %s: scanner_dpi: set without a scanner", c.ID)
		}
		return nil
	}
	kind, arg, ok := strings.Cut(c.Scanner, ":")
	switch {
	case ok && kind == "libfprint":
	case ok && kind == "folder" && strings.TrimSpace(arg) != "":
	default:
		return fmt.Errorf("gate %s: scanner %q: want libfprint:NAME (libfprint:0, libfprint:uru4000, libfprint: for the first) or folder:DIR", c.ID, c.Scanner)
	}
	if _, err := parseGateFingers(c.Fingers); err != nil {
		return fmt.Errorf("gate %s: fingers: %v", c.ID, err)
	}
	if c.FingerTimeout < 0 || c.FingerTimeout > MaxFingerTimeout {
		return fmt.Errorf("gate %s: finger_timeout %v outside 0..%v (0: the default, %v)", c.ID, c.FingerTimeout, MaxFingerTimeout, DefaultFingerTimeout)
	}
	if c.ScannerDPI != 0 && !fpimage.PlausibleDPI(c.ScannerDPI) {
		return fmt.Errorf("gate %s: scanner_dpi %d outside %d..%d (0: the scanner's own)", c.ID, c.ScannerDPI, fpimage.MinDPI, fpimage.MaxDPI)
	}
	return nil
}

// parseGateFingers reads finger position names: distinct, known, at most
// 10.
func parseGateFingers(names []string) ([]minutiae.Position, error) {
	var out []minutiae.Position
	for _, n := range names {
		p, ok := minutiae.ParsePosition(strings.ToLower(strings.TrimSpace(n)))
		if !ok || p == minutiae.PositionUnknown {
			return nil, fmt.Errorf("%q is not a finger (right-thumb … right-little, left-thumb … left-little)", n)
		}
		if slices.Contains(out, p) {
			return nil, fmt.Errorf("%s given twice", p)
		}
		out = append(out, p)
	}
	if len(out) > engine.MaxFingerSamples {
		return nil, fmt.Errorf("%d fingers, at most %d", len(out), engine.MaxFingerSamples)
	}
	return out, nil
}

// withDefaults returns c with its zero settings replaced by the defaults.
func (c GateConfig) withDefaults() GateConfig {
	if c.Lookback == 0 {
		c.Lookback = DefaultLookback
	}
	if c.MaxCaptures == 0 {
		c.MaxCaptures = DefaultGateCaptures
	}
	if c.Scanner != "" {
		if len(c.Fingers) == 0 {
			c.Fingers = DefaultGateFingers
		}
		if c.FingerTimeout == 0 {
			c.FingerTimeout = DefaultFingerTimeout
		}
	}
	if c.Loop == nil {
		loop := true
		c.Loop = &loop
	}
	return c
}

// gatesFile is the layout of a --gates file:
//
//	gates:
//	  - id: "3"
//	    source: rtsp://cam3/stream
type gatesFile struct {
	Gates []GateConfig `yaml:"gates"`
}

// ReadGatesFile reads a gates configuration file (YAML; JSON is YAML too).
// Unknown keys are refused, so that a misspelt setting is not silently
// ignored.
func ReadGatesFile(path string) ([]GateConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gates file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f gatesFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("gates file %s: %w", path, err)
	}
	if err := CheckGates(f.Gates); err != nil {
		return nil, fmt.Errorf("gates file %s: %w", path, err)
	}
	return f.Gates, nil
}

// ParseGateFlag parses a --gate ID=SOURCE flag.
func ParseGateFlag(s string) (GateConfig, error) {
	id, src, ok := strings.Cut(s, "=")
	if !ok {
		return GateConfig{}, fmt.Errorf("%q: want ID=SOURCE, e.g. 3=rtsp://cam3/stream", s)
	}
	c := GateConfig{ID: strings.TrimSpace(id), Source: strings.TrimSpace(src)}
	if err := c.Validate(); err != nil {
		return GateConfig{}, err
	}
	return c, nil
}

// MergeGates returns base with each of over replacing the gate of the same
// id or added (flags over the file).
func MergeGates(base, over []GateConfig) []GateConfig {
	out := slices.Clone(base)
	for _, g := range over {
		if i := slices.IndexFunc(out, func(b GateConfig) bool { return b.ID == g.ID }); i >= 0 {
			out[i] = g
		} else {
			out = append(out, g)
		}
	}
	return out
}

// CheckGates validates every gate and checks that ids are unique.
func CheckGates(gs []GateConfig) error {
	seen := map[string]bool{}
	for i := range gs {
		if err := gs[i].Validate(); err != nil {
			return err
		}
		if seen[gs[i].ID] {
			return fmt.Errorf("gate %s is configured twice", gs[i].ID)
		}
		seen[gs[i].ID] = true
	}
	return nil
}
