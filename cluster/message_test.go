package cluster

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	for _, m := range []Message{
		{Kind: KindEnrol, SubjectID: "P-1", Request: []byte("request bytes")},
		{Kind: KindDelete, SubjectID: strings.Repeat("x", MaxSubjectIDLen)},
	} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != m.Kind || got.SubjectID != m.SubjectID || !bytes.Equal(got.Request, m.Request) {
			t.Fatalf("round trip: %+v, want %+v", got, m)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	for name, m := range map[string]Message{
		"kind":      {Kind: 9, SubjectID: "a"},
		"empty id":  {Kind: KindEnrol},
		"long id":   {Kind: KindEnrol, SubjectID: strings.Repeat("x", MaxSubjectIDLen+1)},
		"oversized": {Kind: KindEnrol, SubjectID: "a", Request: make([]byte, MaxMessageSize)},
	} {
		if _, err := Encode(m); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := Encode(Message{Kind: KindEnrol, SubjectID: "P-1", Request: []byte("r")})
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"short":    {good[:5], "shorter than"},
		"version":  {append([]byte{2}, good[1:]...), "version 2"},
		"checksum": {flip(4), "checksum"},
		"trailing": {append(bytes.Clone(good), 0), "checksum"},
	} {
		_, err := Decode(tc.b)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrMalformed mentioning %q", name, err, tc.want)
		}
	}
}

// TestShardOfStable pins the subject → shard mapping: changing ShardOf would
// send a deployed cluster's subjects to the wrong partitions.
func TestShardOfStable(t *testing.T) {
	for id, want := range map[string]int{"": 153, "P-1": 59, "GB-123456789": 16, "subject-0": 204} {
		if got := ShardOf(id, DefaultShards); got != want {
			t.Errorf("ShardOf(%q, 256) = %d, want %d", id, got, want)
		}
	}
	counts := make([]int, 16)
	for i := range 16000 {
		counts[ShardOf("subject-"+strconv.Itoa(i), 16)]++
	}
	for s, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("shard %d of 16 got %d of 16000", s, n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode(Message{Kind: KindEnrol, SubjectID: "P-1", Request: []byte("r")})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %x vs %x", again, b)
		}
	})
}
