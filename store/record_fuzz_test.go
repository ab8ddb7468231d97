package store

import (
	"testing"
	"time"
)

// FuzzDecodeRecord: a stored subject record, however damaged, decodes to an
// error and never panics; whatever decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	sub := Subject{
		Name:       "Jane Roe",
		Metadata:   map[string]string{"case": "42", "nationality": "XX"},
		Watchlists: []string{"interpol", "sample"},
		Created:    time.Unix(1700000000, 5).UTC(),
		Updated:    time.Unix(1700000001, 0).UTC(),
	}
	f.Add(encodeRecord(&sub, 2))
	f.Add(encodeRecord(&Subject{}, 1))
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Subject
		n, err := decodeRecord(b, &got, nil)
		if err != nil {
			return
		}
		again := encodeRecord(&got, n)
		if string(again) != string(b) {
			t.Fatalf("record does not round-trip:\n in %x\nout %x", b, again)
		}
	})
}
