package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cespare/xxhash/v2"
)

// ShardOf maps a subject id to its logical shard: xxHash64 (XXH64, seed 0)
// of the id's bytes modulo shards. The mapping is part of the on-disk and
// on-stream format: it must never change for a deployed cluster.
func ShardOf(subjectID string, shards int) int {
	if shards <= 0 {
		panic("cluster: ShardOf with shards ≤ 0")
	}
	return int(xxhash.Sum64String(subjectID) % uint64(shards))
}

// Kind is what a log message does to its subject.
type Kind uint8

// Message kinds.
const (
	KindEnrol  Kind = 1 // create or replace the subject
	KindDelete Kind = 2 // remove the subject
)

func (k Kind) String() string {
	switch k {
	case KindEnrol:
		return "enrol"
	case KindDelete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Envelope format and limits.
const (
	// EnvelopeVersion is the version byte Encode writes.
	EnvelopeVersion = 1
	// MaxMessageSize bounds an encoded message (the stream's max_msg_size).
	MaxMessageSize = 16 << 20
	// MaxSubjectIDLen bounds a subject id (store.MaxIDLen).
	MaxSubjectIDLen = 128
	// envelope overhead: version, kind, two uvarint lengths (≤ 5 bytes for
	// ≤ 16 MiB), CRC-32C.
	minEnvelope = 1 + 1 + 1 + 1 + 4
)

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("cluster: malformed message")

// Message is one entry of the enrolment log.
type Message struct {
	Kind      Kind
	SubjectID string
	// Request is the encoded engine request (empty for a delete that needs
	// no more than the id). The log does not interpret it.
	Request []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the message's envelope:
//
//	version u8 (1) | kind u8 | uvarint len | subject id | uvarint len | request | CRC-32C (big endian) of all before
func Encode(m Message) ([]byte, error) {
	if m.Kind != KindEnrol && m.Kind != KindDelete {
		return nil, fmt.Errorf("cluster: encode: unknown kind %d", uint8(m.Kind))
	}
	if n := len(m.SubjectID); n == 0 || n > MaxSubjectIDLen {
		return nil, fmt.Errorf("cluster: encode: subject id of %d bytes, want 1..%d", n, MaxSubjectIDLen)
	}
	b := make([]byte, 0, minEnvelope+len(m.SubjectID)+len(m.Request)+8)
	b = append(b, EnvelopeVersion, byte(m.Kind))
	b = binary.AppendUvarint(b, uint64(len(m.SubjectID)))
	b = append(b, m.SubjectID...)
	b = binary.AppendUvarint(b, uint64(len(m.Request)))
	b = append(b, m.Request...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("cluster: encode: message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	return b, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Decode parses an envelope. Message.Request aliases b. Every error wraps
// ErrMalformed and says what is wrong.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, malformed("%d bytes exceeds %d", len(b), MaxMessageSize)
	}
	if len(b) < minEnvelope {
		return Message{}, malformed("%d bytes is shorter than an envelope (%d)", len(b), minEnvelope)
	}
	if b[0] != EnvelopeVersion {
		return Message{}, malformed("version %d, want %d", b[0], EnvelopeVersion)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return Message{}, malformed("checksum %08x, want %08x", got, sum)
	}
	m := Message{Kind: Kind(body[1])}
	if m.Kind != KindEnrol && m.Kind != KindDelete {
		return Message{}, malformed("unknown kind %d", body[1])
	}
	rest := body[2:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || k != uvarintLen(n) {
		return Message{}, malformed("bad subject id length")
	}
	rest = rest[k:]
	if n == 0 || n > MaxSubjectIDLen || n > uint64(len(rest)) {
		return Message{}, malformed("subject id length %d (want 1..%d, %d bytes left)", n, MaxSubjectIDLen, len(rest))
	}
	m.SubjectID, rest = string(rest[:n]), rest[n:]
	n, k = binary.Uvarint(rest)
	if k <= 0 || k != uvarintLen(n) {
		return Message{}, malformed("bad request length")
	}
	rest = rest[k:]
	if n != uint64(len(rest)) {
		return Message{}, malformed("request length %d, %d bytes left", n, len(rest))
	}
	if n > 0 {
		m.Request = rest
	}
	return m, nil
}

// uvarintLen is the length of n's minimal uvarint; Decode refuses longer
// encodings so that one message has one envelope.
func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}
