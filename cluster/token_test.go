package cluster

import (
	"errors"
	"testing"
)

func TestToken(t *testing.T) {
	for _, tok := range []Token{{0, 1}, {17, 4242}, {MaxShards - 1, 1<<64 - 1}} {
		got, err := ParseToken(tok.String())
		if err != nil || got != tok {
			t.Errorf("%v: parsed %v, %v", tok, got, err)
		}
	}
	if s := (Token{Shard: 17, Seq: 4242}).String(); s != "v1.17.4242" {
		t.Errorf("String: %q", s)
	}
	if got, err := ParseToken(""); err != nil || !got.IsZero() {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"v2.1.2", "1.2", "v1.", "v1.1", "v1.1.", "v1..2", "v1.-1.2", "v1.1.0",
		"v1.01.2", "v1.1.02", "v1.65536.2", "v1.1.18446744073709551616", "v1.1.2.3", "v1.+1.2", " v1.1.2"} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("%q: %v, want ErrBadToken", bad, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "v1.0.1", "v1.255.99", "v1.1.2.3", "v1.01.1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.String() != s {
			t.Fatalf("%q parsed to %v, prints %q", s, tok, tok.String())
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("%v: round trip %v, %v", tok, again, err)
		}
	})
}
