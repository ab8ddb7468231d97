package minutiae

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// seeds are every record in testdata, valid or not, and a few edge cases.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, pattern := range []string{"testdata/*/*.iso", "testdata/*/*/*.iso", "testdata/nist/fmr.*", "testdata/sourceafis/*.dat"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			out = append(out, readFile(t, f))
		}
	}
	if len(out) < 20 {
		t.Fatalf("%d seed files", len(out))
	}
	return append(out, iso2011Sample(), maxCounts(FormatISO2005), maxCounts(FormatANSI2004), maxCounts(FormatANSI2009))
}

// maxCounts is a record header that declares 255 views of 255 minutiae
// and a length matching the input, with only a few bytes behind it.
func maxCounts(f Format) []byte {
	b := []byte(magic)
	switch f {
	case FormatISO2005:
		b = append(b, version20...)
		b = binary.BigEndian.AppendUint32(b, 34)
		b = append(b, 0, 0, 0, 100, 0, 100, 0, 197, 0, 197, 255, 0)
	case FormatANSI2004:
		b = append(b, version20...)
		b = binary.BigEndian.AppendUint16(b, 36)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 100, 0, 100, 0, 197, 0, 197, 255, 0)
	case FormatANSI2009:
		b = append(b, version30...)
		b = binary.BigEndian.AppendUint32(b, 39)
		b = append(b, 0, 0, 0, 0, 0, 0, 255, 0)
	}
	b = append(b, 1, 0, 50, 255) // view 1: 255 minutiae follow…
	if f == FormatANSI2009 {
		b = append(b[:len(b)-1], 0, 0, 0, 0, 0, 100, 0, 100, 0, 197, 0, 197, 255)
	}
	return append(b, 0x40, 1, 0, 1, 0, 0) // …but only one is there
}

// checkParsed is the fuzz property for one input: an error is an *Error
// wrapping a sentinel; an accepted record re-marshals in its own format,
// re-parses to the same value, and marshals to the same bytes again.
func checkParsed(t *testing.T, r Record, err error) {
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T %v is not *Error", err, err)
		}
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("error %v wraps no parse sentinel", err)
		}
		return
	}
	out, err := r.Marshal()
	if err != nil {
		t.Fatalf("accepted record does not marshal: %v\n%+v", err, r)
	}
	for name, parse := range map[string]func([]byte) (Record, error){"Parse": Parse, "ParseISO": ParseISO, "ParseANSI": ParseANSI} {
		if name == "ParseISO" && r.Format != FormatISO2005 || name == "ParseANSI" && r.Format == FormatISO2005 {
			continue
		}
		r2, err := parse(out)
		if err != nil {
			t.Fatalf("%s of the re-marshalled record: %v", name, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("%s: re-parsed record differs:\n%+v\n%+v", name, r, r2)
		}
	}
	if out2, _ := r.Marshal(); !bytes.Equal(out, out2) {
		t.Fatal("marshal is not deterministic")
	}
}

func fuzz(f *testing.F, parse func([]byte) (Record, error)) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		r, err := parse(b)
		if !bytes.Equal(in, b) {
			t.Fatal("parse modified its input")
		}
		checkParsed(t, r, err)
	})
}

func FuzzParse(f *testing.F)     { fuzz(f, Parse) }
func FuzzParseISO(f *testing.F)  { fuzz(f, ParseISO) }
func FuzzParseANSI(f *testing.F) { fuzz(f, ParseANSI) }

// allocBytes is the heap allocated by one call of fn, the least of a few
// runs to shed noise from other goroutines.
func allocBytes(fn func()) uint64 {
	var best uint64 = 1 << 62
	var ms runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		fn()
		runtime.ReadMemStats(&ms)
		best = min(best, ms.TotalAlloc-before)
	}
	return best
}

// allocLimit is what an input of n bytes may cost: each 6 bytes can hold
// at most one view or minutia, each 4 one extended block, and the rest is
// copied once.
func allocLimit(n int) uint64 { return uint64(32*n + 1024) }

// TestParseAllocation checks that counts are not trusted before the bytes
// behind them are there: headers declaring 255 views of 255 minutiae over
// a few bytes, and random mutations of every test record.
func TestParseAllocation(t *testing.T) {
	inputs := seeds(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range seeds(t) {
		for range 100 {
			m := append([]byte(nil), s...)
			for range 1 + rng.IntN(4) {
				m[rng.IntN(len(m))] = byte(rng.Uint32())
			}
			if rng.IntN(4) == 0 {
				m = m[:rng.IntN(len(m))]
			}
			inputs = append(inputs, m)
		}
	}
	accepted := 0
	for _, in := range inputs {
		for _, parse := range []func([]byte) (Record, error){Parse, ParseISO, ParseANSI} {
			var err error
			if n := allocBytes(func() { _, err = parse(in) }); n > allocLimit(len(in)) {
				t.Errorf("%d-byte input (% x…) allocated %d bytes (%v)", len(in), in[:min(len(in), 24)], n, err)
			}
			if err == nil {
				accepted++
			}
		}
	}
	t.Logf("%d inputs, %d parses accepted", len(inputs), accepted)
	for _, f := range []Format{FormatISO2005, FormatANSI2004, FormatANSI2009} {
		if _, err := Parse(maxCounts(f)); !errors.Is(err, ErrTruncated) {
			t.Errorf("%v with 255 views declared: %v, want ErrTruncated", f, err)
		}
	}
}

// TestMutationsRoundTrip runs the fuzz property over seeded random
// mutations, so plain `go test` exercises it beyond the seed corpus.
func TestMutationsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range seeds(t) {
		for range 300 {
			m := append([]byte(nil), s...)
			for range 1 + rng.IntN(3) {
				m[rng.IntN(len(m))] ^= byte(1 << rng.IntN(8))
			}
			r, err := Parse(m)
			checkParsed(t, r, err)
		}
	}
}
