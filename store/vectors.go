package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/templates"
)

// Bulk paths for the in-memory index: loading it at start (Scan), reading
// the exact templates of the few subjects a search re-scores (Templates),
// and importing a gallery (Import).

// IndexSubject is what Scan passes of one subject: what the matcher indexes
// need, read without decoding the rest of the record. ID and Templates are
// only valid during the call (their buffers are reused); Watchlists holds
// shared strings in a reused slice, so keep a copy of the slice.
type IndexSubject struct {
	ID         []byte
	Watchlists []string
	// Templates are the subject's templates in the templates package
	// encoding, in sequence order.
	Templates [][]byte
	// Damaged is set, and Watchlists and Templates are empty, when the
	// subject's record does not decode or names another number of
	// templates than are stored: the caller leaves it out (quarantines
	// it) rather than failing the whole load.
	Damaged error
}

// Scan calls fn with every subject, in id order, from one consistent
// snapshot, for loading the matcher indexes at start. Unlike Each it
// allocates nothing per subject: it skips the name and metadata (still
// checking the record's checksum), and passes the templates undecoded in
// buffers it reuses. An error from fn stops the walk and is returned as is;
// a subject whose record or templates do not read, or whose templates do
// not match its record, is passed with Damaged set and listed by Damage
// (see walk).
func (s *Store) Scan(fn func(*IndexSubject) error) error {
	lists := interner{}
	var (
		sub     IndexSubject
		idBuf   []byte
		recBuf  []byte
		tplBufs [][]byte
	)
	return s.walk(subjectWalker{
		record: func(id []byte, item *badger.Item) (n int, err error) {
			idBuf = append(idBuf[:0], id...)
			sub.ID = idBuf
			sub.Templates = sub.Templates[:0]
			if recBuf, err = item.ValueCopy(recBuf[:0]); err != nil {
				return 0, err
			}
			sub.Watchlists, n, err = recordLists(recBuf, sub.Watchlists[:0], lists)
			return n, err
		},
		template: func(item *badger.Item) (err error) {
			i := len(sub.Templates)
			if i == len(tplBufs) {
				tplBufs = append(tplBufs, nil)
			}
			if tplBufs[i], err = item.ValueCopy(tplBufs[i][:0]); err != nil {
				return fmt.Errorf("store: subject %q: %w", sub.ID, err)
			}
			sub.Templates = append(sub.Templates, tplBufs[i])
			return nil
		},
		done: func() error { sub.Damaged = nil; return fn(&sub) },
		damaged: func(id []byte, err error) error {
			idBuf = append(idBuf[:0], id...)
			sub.ID, sub.Watchlists, sub.Templates, sub.Damaged = idBuf, sub.Watchlists[:0], sub.Templates[:0], err
			return fn(&sub)
		},
	})
}

// recordLists checks a subject record and returns its watchlists, appended
// to lists, and its number of templates, skipping the rest without
// allocating.
func recordLists(b []byte, lists []string, in interner) ([]string, int, error) {
	if len(b) < 1+4 {
		return nil, 0, fmt.Errorf("%w: %d bytes", errRecord, len(b))
	}
	if b[0] != recordVersion {
		return nil, 0, fmt.Errorf("%w: unknown record version %d", errRecord, b[0])
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", errRecord)
	}
	r := recordReader{b: body[1:]}
	r.varint()
	r.varint()
	r.bytes(MaxNameLen)
	for range int(r.uvarint(MaxMetadataKeys)) {
		r.bytes(MaxMetadataKey)
		r.bytes(MaxMetadataValue)
	}
	for range int(r.uvarint(MaxWatchlists)) {
		w := r.bytes(MaxWatchlistName)
		if r.err != nil {
			break
		}
		lists = append(lists, in.str(w))
	}
	nt := int(r.uvarint(MaxTemplates))
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errRecord, len(r.b))
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	return lists, nt, nil
}

// Templates calls fn(i, t) with every stored template of subject ids[i],
// for each i, in one read transaction: the exact vectors of the subjects a
// search re-scores. A subject not (or no longer) stored gets no call. t is
// fn's to keep. A stored template that does not decode is an error naming
// the subject.
func (s *Store) Templates(ids []string, fn func(i int, t templates.Template)) error {
	return s.db.View(func(txn *badger.Txn) error {
		// One iterator, sought to each subject: opening an iterator costs
		// more than the few reads of a subject.
		it := txn.NewIterator(iterOpts([]byte(templatePrefix)))
		defer it.Close()
		var prefix []byte
		for i, id := range ids {
			prefix = append(append(append(prefix[:0], templatePrefix...), id...), templateSep)
			for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
				var t templates.Template
				if err := it.Item().Value(t.UnmarshalBinary); err != nil {
					_, seq, _ := splitTemplateKey(it.Item().Key())
					return fmt.Errorf("store: subject %q: template %d: %w", id, seq, err)
				}
				fn(i, t)
			}
		}
		return nil
	})
}

// Import stores many new subjects at once, as Create would one by one
// (validated, watchlists normalised, Created and Updated set), through
// Badger's batched writer: a gallery of millions imported in minutes, not
// hours of one synced transaction each. It fails with ErrExists naming the
// first id already stored (or repeated in subs) and writes nothing then;
// otherwise everything is on disk when it returns. Not atomic as a whole:
// if it fails part way through writing (a disk error), some subjects may be
// stored. Meant for a gallery nobody else writes to meanwhile.
func (s *Store) Import(subs []Subject) error {
	type prepared struct {
		sub     Subject
		enc     [][]byte
		samples [][]byte
	}
	ps := make([]prepared, len(subs))
	seen := make(map[string]bool, len(subs))
	now := time.Unix(0, time.Now().UnixNano()).UTC()
	for i, sub := range subs {
		samples, err := encodeSamples(sub.Samples)
		if err != nil {
			return fmt.Errorf("subject %d: %w", i, err)
		}
		p, enc, err := prepare(sub)
		if err != nil {
			return fmt.Errorf("subject %d: %w", i, err)
		}
		if seen[p.ID] {
			return fmt.Errorf("%w: %q given twice", ErrExists, p.ID)
		}
		seen[p.ID] = true
		p.Created, p.Updated = now, now
		ps[i] = prepared{p, enc, samples}
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range ps {
			switch _, err := txn.Get(subjectKey(p.sub.ID)); {
			case err == nil:
				return fmt.Errorf("%w: %q", ErrExists, p.sub.ID)
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, p := range ps {
		if err := wb.Set(subjectKey(p.sub.ID), encodeRecord(&p.sub, len(p.enc))); err != nil {
			return fmt.Errorf("store: importing %q: %w", p.sub.ID, err)
		}
		for i, b := range p.enc {
			if err := wb.Set(templateKey(p.sub.ID, i), b); err != nil {
				return fmt.Errorf("store: importing %q: %w", p.sub.ID, err)
			}
		}
		for i, b := range p.samples {
			for part, c := range sampleChunks(b) {
				if err := wb.Set(sampleKey(p.sub.ID, i, part), c); err != nil {
					return fmt.Errorf("store: importing %q: %w", p.sub.ID, err)
				}
			}
		}
		for _, w := range p.sub.Watchlists {
			if err := wb.Set(watchlistKey(w, p.sub.ID), nil); err != nil {
				return fmt.Errorf("store: importing %q: %w", p.sub.ID, err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: importing: %w", err)
	}
	return nil
}
