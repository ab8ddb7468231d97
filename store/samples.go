package store

// Kept samples and the state of long-running jobs.
//
// An enrolment's source samples — face photos as received, fingerprint
// images and minutiae records — are kept beside its templates, so that the
// gallery can be re-templated with a new algorithm without asking every
// traveller back:
//
//	x/<id> 0x00 <seq:2 BE> <part:2 BE>  → part of one sample (encodeSample),
//	                                       seq 0..MaxSamples-1
//
// A sample is stored in chunks of at most sampleChunk bytes, so that every
// value stays below Badger's value threshold (1 MiB) and lives in the LSM
// tree: Purge's flattening then removes a deleted subject's photos from the
// files as it does its templates, which values in the value log would
// survive. The samples of one subject are bounded (MaxKeptBytes), so that
// they fit the subject's transaction with room to spare; an enrolment with
// more is stored without its samples (the engine says so).
//
// They are written in the subject's creating transaction, deleted in its
// deleting one (and so purged with it), encrypted at rest like every other
// key, carried by Backup and Restore, and never returned by Get or List
// (Subject.SampleCount says how many there are). The key's NUL separator
// sorts like the template keys' (see the package comment).
//
// A job's state (the re-templating of the gallery) is one small value under
// meta/job/<name>, written in the same transaction as each subject the job
// updates (SetTemplates), so that a job interrupted at any point resumes
// from the last subject it finished. It is not part of a backup.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/templates"
)

// SampleKind says what a kept sample is.
type SampleKind uint8

const (
	SampleFacePhoto    SampleKind = 1 // a face photo, the bytes as received
	SampleFingerImage  SampleKind = 2 // a fingerprint image (Format, DPI, Position as given)
	SampleFingerRecord SampleKind = 3 // an ISO/ANSI minutiae record (Position as given)
)

func (k SampleKind) String() string {
	switch k {
	case SampleFacePhoto:
		return "face photo"
	case SampleFingerImage:
		return "finger image"
	case SampleFingerRecord:
		return "finger record"
	}
	return fmt.Sprintf("sample kind %d", uint8(k))
}

// Sample is one kept source sample of a subject.
type Sample struct {
	Kind SampleKind
	Data []byte
	// Fingers only: the format hint and resolution given with an image
	// (empty, 0: none), and the finger position (minutiae.Position).
	Format   string
	DPI      int
	Position uint8
}

// Limits of kept samples.
const (
	// MaxSamples is 16 face photos and 10 fingers.
	MaxSamples = 26
	// MaxKeptBytes bounds the encoded samples of one subject: they are
	// written in its creating transaction, which Badger bounds at 15% of
	// a memtable (9.6 MB).
	MaxKeptBytes    = 6 << 20
	maxSampleFormat = 16
	// sampleChunk is the largest value a sample is stored in.
	sampleChunk = 512 << 10
)

// sampleChunks splits an encoded sample into its stored values.
func sampleChunks(b []byte) [][]byte {
	var out [][]byte
	for len(b) > sampleChunk {
		out = append(out, b[:sampleChunk])
		b = b[sampleChunk:]
	}
	return append(out, b)
}

const (
	samplePrefix  = "x/"
	sampleVersion = 1
	jobPrefix     = "meta/job/"
)

func sampleKeyPrefix(id string) []byte {
	k := make([]byte, 0, len(samplePrefix)+len(id)+3)
	k = append(k, samplePrefix...)
	k = append(k, id...)
	return append(k, templateSep)
}

func sampleKey(id string, seq, part int) []byte {
	return append(sampleKeyPrefix(id), byte(seq>>8), byte(seq), byte(part>>8), byte(part))
}

// splitSampleKey returns the id, sequence number and part of a sample key.
func splitSampleKey(k []byte) (id []byte, seq, part int, ok bool) {
	n := len(k)
	if n < len(samplePrefix)+1+5 || !bytes.HasPrefix(k, []byte(samplePrefix)) || k[n-5] != templateSep {
		return nil, 0, 0, false
	}
	return k[len(samplePrefix) : n-5], int(k[n-4])<<8 | int(k[n-3]), int(k[n-2])<<8 | int(k[n-1]), true
}

// sampleAssembler puts a sample's chunks back together as they come in key
// order, and decodes each sample once it is whole.
type sampleAssembler struct {
	buf       []byte
	seq, next int // the sample being assembled and its next part; next 0: none
	samples   []Sample
	// drop checks every sample and keeps none (a restore).
	drop bool
}

// add takes the next chunk, in key order, of one subject's samples.
func (a *sampleAssembler) add(seq, part int, v []byte) error {
	if a.next > 0 && seq != a.seq {
		if err := a.flush(); err != nil {
			return err
		}
	}
	if part != a.next {
		return fmt.Errorf("%w: sample %d: part %d where %d was due", errSample, seq, part, a.next)
	}
	if len(a.buf)+len(v) > MaxKeptBytes {
		return fmt.Errorf("%w: sample %d is over %d bytes", errSample, seq, MaxKeptBytes)
	}
	a.buf = append(a.buf, v...)
	a.seq, a.next = seq, part+1
	return nil
}

// flush decodes the sample being assembled.
func (a *sampleAssembler) flush() error {
	if a.next == 0 {
		return nil
	}
	sm, err := decodeSample(a.buf)
	if err != nil {
		return fmt.Errorf("sample %d: %w", a.seq, err)
	}
	if !a.drop {
		a.samples = append(a.samples, sm)
	}
	a.buf, a.next = a.buf[:0], 0
	return nil
}

// Sample encoding, version 1 (varints as in record.go):
//
//	version   1         1 byte
//	kind                1 byte
//	position            1 byte
//	dpi                 uvarint
//	format    string
//	data      uvarint length, bytes
//	crc32c    of all the above, 4 bytes little endian
func encodeSample(sm Sample) ([]byte, error) {
	switch {
	case sm.Kind < SampleFacePhoto || sm.Kind > SampleFingerRecord:
		return nil, invalid("sample: unknown kind %d", sm.Kind)
	case len(sm.Data) == 0 || len(sm.Data) > MaxKeptBytes:
		return nil, invalid("sample: %d bytes, want 1..%d", len(sm.Data), MaxKeptBytes)
	case len(sm.Format) > maxSampleFormat:
		return nil, invalid("sample: format %.16q longer than %d bytes", sm.Format, maxSampleFormat)
	case sm.DPI < 0 || sm.DPI > 1<<20:
		return nil, invalid("sample: dpi %d", sm.DPI)
	}
	b := make([]byte, 0, 3+2*binary.MaxVarintLen32+len(sm.Format)+len(sm.Data)+4)
	b = append(b, sampleVersion, byte(sm.Kind), sm.Position)
	b = binary.AppendUvarint(b, uint64(sm.DPI))
	b = binary.AppendUvarint(b, uint64(len(sm.Format)))
	b = append(b, sm.Format...)
	b = binary.AppendUvarint(b, uint64(len(sm.Data)))
	b = append(b, sm.Data...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

var errSample = errors.New("corrupt sample")

// decodeSample decodes a kept sample; Data is a copy.
func decodeSample(b []byte) (Sample, error) {
	if len(b) < 3+4 {
		return Sample{}, fmt.Errorf("%w: %d bytes", errSample, len(b))
	}
	if b[0] != sampleVersion {
		return Sample{}, fmt.Errorf("%w: unknown version %d", errSample, b[0])
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return Sample{}, fmt.Errorf("%w: checksum mismatch", errSample)
	}
	sm := Sample{Kind: SampleKind(body[1]), Position: body[2]}
	if sm.Kind < SampleFacePhoto || sm.Kind > SampleFingerRecord {
		return Sample{}, fmt.Errorf("%w: unknown kind %d", errSample, body[1])
	}
	r := recordReader{b: body[3:]}
	sm.DPI = int(r.uvarint(1 << 20))
	sm.Format = string(r.bytes(maxSampleFormat))
	sm.Data = bytes.Clone(r.bytes(MaxKeptBytes))
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errSample, len(r.b))
	}
	if r.err != nil {
		if errors.Is(r.err, errRecord) {
			return Sample{}, errSample
		}
		return Sample{}, r.err
	}
	return sm, nil
}

// Samples returns the kept samples of subject id in the order they were
// enrolled: none for a subject enrolled without keeping them, ErrNotFound
// for no subject.
func (s *Store) Samples(id string) ([]Sample, error) {
	if validID(id) != nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out []Sample
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(subjectKey(id)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		} else if err != nil {
			return err
		}
		it := txn.NewIterator(iterOpts(sampleKeyPrefix(id)))
		defer it.Close()
		var a sampleAssembler
		for it.Rewind(); it.Valid(); it.Next() {
			_, seq, part, ok := splitSampleKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("store: subject %q: malformed sample key %q", id, it.Item().Key())
			}
			if err := it.Item().Value(func(v []byte) error { return a.add(seq, part, v) }); err != nil {
				return fmt.Errorf("store: subject %q: %w", id, err)
			}
		}
		if err := a.flush(); err != nil {
			return fmt.Errorf("store: subject %q: %w", id, err)
		}
		out = a.samples
		return nil
	})
	return out, err
}

// sampleCount counts id's kept samples (their first parts) without
// reading them.
func sampleCount(txn *badger.Txn, id string) (int, error) {
	it := txn.NewIterator(iterOpts(sampleKeyPrefix(id)))
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if _, _, part, ok := splitSampleKey(it.Item().Key()); ok && part == 0 {
			n++
		}
	}
	return n, nil
}

// encodeSamples validates and encodes a subject's samples for Create.
func encodeSamples(sms []Sample) ([][]byte, error) {
	if len(sms) > MaxSamples {
		return nil, invalid("samples: %d, at most %d", len(sms), MaxSamples)
	}
	var enc [][]byte
	total := 0
	for i, sm := range sms {
		b, err := encodeSample(sm)
		if err != nil {
			return nil, fmt.Errorf("samples[%d]: %w", i, err)
		}
		enc = append(enc, b)
		total += len(b)
	}
	if total > MaxKeptBytes {
		return nil, invalid("samples: %d bytes, at most %d for one subject", total, MaxKeptBytes)
	}
	return enc, nil
}

// IDs returns up to n subject ids in id order, after the id given ("" for
// the first), for jobs that walk the gallery a subject at a time.
func (s *Store) IDs(after string, n int) ([]string, error) {
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(iterOpts([]byte(subjectPrefix)))
		defer it.Close()
		it.Seek(append(subjectKey(after), 0))
		if after == "" {
			it.Rewind()
		}
		for ; it.Valid() && len(ids) < n; it.Next() {
			ids = append(ids, string(it.Item().Key()[len(subjectPrefix):]))
		}
		return nil
	})
	return ids, err
}

// Job is the state of a named job, written with a subject's update.
type Job struct {
	Name  string
	State []byte
}

func jobKey(name string) []byte { return []byte(jobPrefix + name) }

// JobState returns the stored state of a job, nil if there is none.
func (s *Store) JobState(name string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(jobKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	return v, err
}

// SetJobState writes (nil: deletes) a job's state durably.
func (s *Store) SetJobState(name string, state []byte) error {
	return s.update(func(txn *badger.Txn) error {
		if state == nil {
			return txn.Delete(jobKey(name))
		}
		return txn.Set(jobKey(name), state)
	})
}

// SetTemplates replaces every template of subject id with tpls and, when job
// is not nil, writes the job's state, in one durable transaction; it
// returns the subject as stored (Updated set now), or ErrNotFound. The
// caller serialises it with other writes of the same subject.
func (s *Store) SetTemplates(id string, tpls []templates.Template, job *Job) (Subject, error) {
	if validID(id) != nil {
		return Subject{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var out Subject
	err := s.update(func(txn *badger.Txn) error {
		sub, err := getSubject(txn, id, false)
		if err != nil {
			return err
		}
		sub.Templates = tpls
		p, enc, err := prepare(sub)
		if err != nil {
			return err
		}
		p.Created = sub.Created
		p.Updated = time.Unix(0, time.Now().UnixNano()).UTC()
		it := txn.NewIterator(iterOpts(templateKeyPrefix(id)))
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if err := txn.Set(subjectKey(id), encodeRecord(&p, len(enc))); err != nil {
			return err
		}
		for i, b := range enc {
			if err := txn.Set(templateKey(id, i), b); err != nil {
				return err
			}
		}
		if job != nil {
			if err := txn.Set(jobKey(job.Name), job.State); err != nil {
				return err
			}
		}
		out = p
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
			return Subject{}, err
		}
		return Subject{}, fmt.Errorf("store: updating the templates of %q: %w", id, err)
	}
	return out, nil
}
