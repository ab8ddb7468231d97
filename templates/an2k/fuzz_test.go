package an2k

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

// seeds are every test file, those over 64 KB cut to their first 64 KB
// (the structure is at the start; the fuzzer grows them back if it
// likes), and a transaction built with every helper.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, path := range testFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b[:min(len(b), 64<<10)])
	}
	p, _ := LoadProfile("int-i")
	tr, err := NewTransaction(p, "CPS", Header{Originator: "BM", Destination: "IP", TCN: "1"})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := p.Type2(map[string]string{"reference": "X1"})
	tr.Add(r)
	if _, err := tr.AddMinutiae(testMinutiae()); err != nil {
		t.Fatal(err)
	}
	b, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, b)
}

// checkParse is the fuzz property of Parse: no panic, the input unchanged,
// an error is an *Error wrapping a sentinel at an offset inside the
// input, and the accessors of an accepted transaction do not panic.
func checkParse(t *testing.T, b []byte) *Transaction {
	in := bytes.Clone(b)
	tr, err := Parse(b)
	if !bytes.Equal(in, b) {
		t.Fatal("Parse modified its input")
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(b) {
			t.Fatalf("%v: not an *Error at an offset in the input", err)
		}
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrCount) {
			t.Fatalf("%v wraps no parse sentinel", err)
		}
		return nil
	}
	if len(tr.Records) == 0 || tr.Records[0].Type != 1 {
		t.Fatal("no Type-1 first")
	}
	_, _ = tr.Domain()
	for i := range tr.Records {
		if im, err := tr.Image(i); err == nil && im.Width*im.Height <= 1<<20 {
			_, _ = im.Decode()
		}
		_, _ = tr.Minutiae(i)
		_, _ = tr.LegacyMinutiae(i)
	}
	return tr
}

// checkRoundTrip: what Parse accepts, Encode writes and Parse reads back
// equal.
func checkRoundTrip(t *testing.T, b []byte) {
	tr, err := Parse(b)
	if err != nil {
		return
	}
	out, err := tr.Encode()
	if err != nil {
		t.Fatalf("encoding a parsed transaction: %v", err)
	}
	tr2, err := Parse(out)
	if err != nil {
		t.Fatalf("re-reading: %v", err)
	}
	checkEqual(t, "fuzz", tr, tr2)
}

// The seeds go up to 64 KB and Go minimises each new input it keeps for
// up to a minute by default, which stalls a short run; run with
//
//	go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s -fuzzminimizetime 2s ./templates/an2k
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, b) })
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkRoundTrip)
}

// TestMutations runs both properties over seeded random mutations of the
// first 400 bytes (where Type-1, CNT and the first LENs are) so plain
// `go test` exercises them beyond the seeds.
func TestMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	seps := []byte{FS, GS, RS, US, '.', ':', '0', '9'}
	for _, s := range seeds(t) {
		for range 200 {
			m := bytes.Clone(s)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(min(len(m), 400))
				if rng.IntN(2) == 0 {
					m[i] = seps[rng.IntN(len(seps))]
				} else {
					m[i] ^= byte(1 << rng.IntN(8))
				}
			}
			checkParse(t, m)
			checkRoundTrip(t, m)
		}
	}
}

// TestAllocationBounded: lengths and counts read from the input do not
// make Parse allocate beyond a small multiple of the input.
func TestAllocationBounded(t *testing.T) {
	for _, in := range []string{
		"1.001:4294967295\x1d1.002:0500\x1c",
		"1.001:57\x1d1.002:0500\x1d1.003:1\x1f999999999\x1e4\x1f01\x1d1.004:X\x1c",
		"1.001:47\x1d1.002:0500\x1d1.003:1\x1f1\x1e4\x1f01\x1d1.004:X\x1c\xff\xff\xff\xff\x01",
		"1.001:47\x1d1.002:0500\x1d1.003:1\x1f1\x1e2\x1f01\x1d1.004:X\x1c2.001:999999999999",
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Parse([]byte(in))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%q parsed", in)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 16<<10 {
			t.Errorf("%q: %d bytes allocated for %d bytes of input", in, n, len(in))
		}
	}
}
