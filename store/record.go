package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/bordermatch/bordermatch/templates"
)

// Subject is one enrolled person.
type Subject struct {
	ID         string
	Name       string
	Metadata   map[string]string
	Watchlists []string // sorted, deduplicated on write
	Created    time.Time
	Updated    time.Time
	Templates  []templates.Template
	// Samples are the source samples to keep with the subject (samples.go):
	// Create writes them; Get, List and Each never return them.
	Samples []Sample
	// SampleCount is the number of kept samples; Get fills it.
	SampleCount int
}

// Limits enforced by Create.
const (
	MaxIDLen         = 128
	MaxNameLen       = 256
	MaxMetadataKeys  = 64
	MaxMetadataKey   = 64
	MaxMetadataValue = 1024
	MaxWatchlistName = 64
	MaxWatchlists    = 64 // distinct watchlists per subject
	// MaxTemplates is 16 face samples under each of two face algorithms
	// (a gallery being re-templated holds both) and one template per
	// finger; the engine enforces the split.
	MaxTemplates = 42
)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
}

func listByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

func validID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen {
		return invalid("id must be 1..%d bytes, got %d", MaxIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return invalid("id %q: byte %d (%q) is not one of [A-Za-z0-9._:@-]", id, i, id[i])
		}
	}
	return nil
}

// ValidWatchlist checks a watchlist name as enrolments and searches need it:
// 1..MaxWatchlistName bytes of [A-Za-z0-9._-]. Its error wraps ErrInvalid.
func ValidWatchlist(name string) error {
	if len(name) == 0 || len(name) > MaxWatchlistName {
		return invalid("watchlist name must be 1..%d bytes, got %d", MaxWatchlistName, len(name))
	}
	for i := 0; i < len(name); i++ {
		if !listByte(name[i]) {
			return invalid("watchlist %q: byte %d (%q) is not one of [A-Za-z0-9._-]", name, i, name[i])
		}
	}
	return nil
}

// prepare validates sub and returns its normalised form (watchlists sorted
// and deduplicated, metadata copied, empty collections nil, templates as
// they decode from storage) and the encoded templates.
func prepare(sub Subject) (Subject, [][]byte, error) {
	if err := validID(sub.ID); err != nil {
		return Subject{}, nil, err
	}
	if len(sub.Name) > MaxNameLen {
		return Subject{}, nil, invalid("name is %d bytes, at most %d", len(sub.Name), MaxNameLen)
	}
	if !utf8.ValidString(sub.Name) {
		return Subject{}, nil, invalid("name is not valid UTF-8")
	}
	if len(sub.Metadata) > MaxMetadataKeys {
		return Subject{}, nil, invalid("metadata has %d keys, at most %d", len(sub.Metadata), MaxMetadataKeys)
	}
	for k, v := range sub.Metadata {
		switch {
		case len(k) == 0 || len(k) > MaxMetadataKey:
			return Subject{}, nil, invalid("metadata key %.64q must be 1..%d bytes, got %d", k, MaxMetadataKey, len(k))
		case !utf8.ValidString(k):
			return Subject{}, nil, invalid("metadata key %q is not valid UTF-8", k)
		case len(v) > MaxMetadataValue:
			return Subject{}, nil, invalid("metadata value of %q is %d bytes, at most %d", k, len(v), MaxMetadataValue)
		case !utf8.ValidString(v):
			return Subject{}, nil, invalid("metadata value of %q is not valid UTF-8", k)
		}
	}
	for _, w := range sub.Watchlists {
		if err := ValidWatchlist(w); err != nil {
			return Subject{}, nil, err
		}
	}
	lists := slices.Compact(slices.Sorted(slices.Values(sub.Watchlists)))
	if len(lists) > MaxWatchlists {
		return Subject{}, nil, invalid("watchlists: %d distinct, at most %d", len(lists), MaxWatchlists)
	}
	if len(sub.Templates) == 0 || len(sub.Templates) > MaxTemplates {
		return Subject{}, nil, invalid("templates: need 1..%d, got %d", MaxTemplates, len(sub.Templates))
	}
	enc := make([][]byte, len(sub.Templates))
	tpls := make([]templates.Template, len(sub.Templates))
	for i, t := range sub.Templates {
		b, err := t.MarshalBinary()
		if err != nil {
			return Subject{}, nil, invalid("templates[%d]: %v", i, err)
		}
		// Store only what loads again: MarshalBinary accepts vectors that
		// UnmarshalBinary refuses (NaN, Inf), and a stored template that
		// does not decode would stop the index from loading.
		if err := tpls[i].UnmarshalBinary(b); err != nil {
			return Subject{}, nil, invalid("templates[%d]: %v", i, err)
		}
		enc[i] = b
	}
	out := Subject{ID: sub.ID, Name: sub.Name, Templates: tpls}
	if len(sub.Metadata) > 0 {
		out.Metadata = maps.Clone(sub.Metadata)
	}
	if len(lists) > 0 {
		out.Watchlists = lists
	}
	return out, enc, nil
}

// Subject record encoding, version 1 (integers are unsigned LEB128 varints
// unless said otherwise, strings are a varint length and the bytes):
//
//	version     1                       1 byte
//	created     unix nanoseconds        signed varint
//	updated     unix nanoseconds        signed varint
//	name        string
//	nmeta       count, then nmeta × (key string, value string), keys sorted
//	nlists      count, then nlists × name string, sorted
//	ntemplates  count of t/ keys the subject has
//	crc32c      of all the above        4 bytes little endian
//
// The id is not repeated: it is the key.
const recordVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeRecord(sub *Subject, ntemplates int) []byte {
	n := 1 + 2*binary.MaxVarintLen64 + 4*binary.MaxVarintLen32 + len(sub.Name) + 4
	for k, v := range sub.Metadata {
		n += 2*binary.MaxVarintLen32 + len(k) + len(v)
	}
	for _, w := range sub.Watchlists {
		n += binary.MaxVarintLen32 + len(w)
	}
	b := make([]byte, 0, n)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, recordVersion)
	b = binary.AppendVarint(b, sub.Created.UnixNano())
	b = binary.AppendVarint(b, sub.Updated.UnixNano())
	str(sub.Name)
	b = binary.AppendUvarint(b, uint64(len(sub.Metadata)))
	for _, k := range slices.Sorted(maps.Keys(sub.Metadata)) {
		str(k)
		str(sub.Metadata[k])
	}
	b = binary.AppendUvarint(b, uint64(len(sub.Watchlists)))
	for _, w := range sub.Watchlists {
		str(w)
	}
	b = binary.AppendUvarint(b, uint64(ntemplates))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errRecord = errors.New("corrupt subject record")

// recordReader reads a record without ever panicking on bad input.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) uvarint(max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max {
		r.err = errRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes(max int) []byte {
	n := int(r.uvarint(uint64(max)))
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errRecord
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// interner shares the strings of watchlist names across the subjects Each
// loads: a million subjects on three watchlists need three strings, not a
// million.
type interner map[string]string

func (in interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < 1<<16 {
		in[s] = s
	}
	return s
}

// decodeRecord fills sub (all but ID and Templates) from a record and returns
// the number of templates the record says the subject has.
func decodeRecord(b []byte, sub *Subject, in interner) (int, error) {
	if len(b) < 1+4 {
		return 0, fmt.Errorf("%w: %d bytes", errRecord, len(b))
	}
	if b[0] != recordVersion {
		return 0, fmt.Errorf("%w: unknown record version %d", errRecord, b[0])
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", errRecord)
	}
	r := recordReader{b: body[1:]}
	created, updated := r.varint(), r.varint()
	sub.Created = time.Unix(0, created).UTC()
	sub.Updated = time.Unix(0, updated).UTC()
	sub.Name = string(r.bytes(MaxNameLen))
	if nm := int(r.uvarint(MaxMetadataKeys)); nm > 0 {
		sub.Metadata = make(map[string]string, nm)
		for range nm {
			k := r.bytes(MaxMetadataKey)
			v := r.bytes(MaxMetadataValue)
			if r.err != nil {
				break
			}
			sub.Metadata[string(k)] = string(v)
		}
	}
	if nl := int(r.uvarint(MaxWatchlists)); nl > 0 {
		sub.Watchlists = make([]string, 0, nl)
		for range nl {
			w := r.bytes(MaxWatchlistName)
			if r.err != nil {
				break
			}
			sub.Watchlists = append(sub.Watchlists, in.str(w))
		}
	}
	nt := int(r.uvarint(MaxTemplates))
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errRecord, len(r.b))
	}
	if r.err != nil {
		return 0, r.err
	}
	return nt, nil
}
