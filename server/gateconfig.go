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
)

// Gate configuration defaults and limits.
const (
	DefaultLookback     = 2 * time.Second
	MaxLookback         = 10 * time.Second
	DefaultGateCaptures = 2
	MaxGateCaptures     = 64
	// MaxGateFPS bounds a gate's replay rate.
	MaxGateFPS = 1000
)

// GateConfig is one gate of matchd's configuration (--gates FILE, --gate
// ID=SOURCE). A zero FPS, Lookback or MaxCaptures takes the default; a
// negative one is refused.
type GateConfig struct {
	// ID names the gate in requests: letters, digits, '.', '_', '-'.
	ID string `yaml:"id" json:"id"`
	// Source is the camera, as capture.Open takes it: /dev/video0, v4l2:0,
	// rtsp://…, http(s)://…, a video file, folder:DIR or a directory.
	Source string `yaml:"source" json:"source"`
	// Scanner is refused: gate captures do not use fingerprint scanners
	// yet. The key is known so that a file setting it gets that answer
	// rather than "field scanner not found".
	Scanner string `yaml:"scanner,omitempty" json:"scanner,omitempty"`
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
	if c.Scanner != "" {
		return fmt.Errorf("gate %s: scanner: fingerprint scanners at gates are not supported yet; remove the setting", c.ID)
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

// withDefaults returns c with its zero settings replaced by the defaults.
func (c GateConfig) withDefaults() GateConfig {
	if c.Lookback == 0 {
		c.Lookback = DefaultLookback
	}
	if c.MaxCaptures == 0 {
		c.MaxCaptures = DefaultGateCaptures
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
