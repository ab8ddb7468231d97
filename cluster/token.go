package cluster

// The consistency token of read-your-writes. An enrolment or deletion
// through the log returns the shard and stream sequence of its message
// (EnrollThroughLog); the client hands that back on its next read, and the
// replica answering the read first waits until it has applied the shard up
// to that sequence, so the client sees its own write whichever replica
// answers. The text form travels in gRPC metadata and NATS headers:
//
//	v1.<shard>.<seq>    e.g. "v1.17.4242"
//
// The version prefix lets a later token carry more (several shards) without
// old nodes misreading it: they refuse it as malformed.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// tokenPrefix is the version prefix of Token.String.
const tokenPrefix = "v1."

// Token is a consistency token: the shard of a write and its stream
// sequence. The zero Token (Seq 0) means "no token".
type Token struct {
	Shard int
	Seq   uint64
}

// IsZero reports whether t is no token.
func (t Token) IsZero() bool { return t.Seq == 0 }

// String is the token's text form, "v1.<shard>.<seq>" ("" for no token).
func (t Token) String() string {
	if t.IsZero() {
		return ""
	}
	return tokenPrefix + strconv.Itoa(t.Shard) + "." + strconv.FormatUint(t.Seq, 10)
}

// ErrBadToken is wrapped by ParseToken's errors.
var ErrBadToken = errors.New("cluster: malformed consistency token")

// ParseToken parses Token.String's form. The empty string is no token (the
// zero Token, no error); anything else must be "v1.<shard>.<seq>" with
// 0 ≤ shard < MaxShards and seq ≥ 1, decimal, no signs or leading zeros.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w %.40q: want prefix %q", ErrBadToken, s, tokenPrefix)
	}
	sh, sq, ok := strings.Cut(rest, ".")
	if !ok {
		return Token{}, fmt.Errorf("%w %.40q: want v1.<shard>.<seq>", ErrBadToken, s)
	}
	shard, err := decimal(sh, MaxShards-1)
	if err != nil {
		return Token{}, fmt.Errorf("%w %.40q: shard: %v", ErrBadToken, s, err)
	}
	seq, err := decimal(sq, 1<<64-1)
	if err != nil {
		return Token{}, fmt.Errorf("%w %.40q: seq: %v", ErrBadToken, s, err)
	}
	if seq == 0 {
		return Token{}, fmt.Errorf("%w %.40q: seq 0 (sequences start at 1)", ErrBadToken, s)
	}
	return Token{Shard: int(shard), Seq: seq}, nil
}

// decimal parses a canonical unsigned decimal ≤ max.
func decimal(s string, max uint64) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q out of range 0..%d", s, max)
	}
	return n, nil
}

// Owns reports whether shard is one of the replica's (ServeOptions.Owns,
// CallOptions.Owns).
func (r *Replica) Owns(shard int) bool { return r.owns(shard) }
