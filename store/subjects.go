package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/templates"
)

// maxAttempts bounds the retries of a write transaction that lost a conflict
// to a concurrent write of the same subject.
const maxAttempts = 5

// update runs fn in a read-write transaction, retrying on conflict.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	// Purge and a failed Restore hold writes off while Badger flushes
	// (gc.go); Badger itself would fail them with ErrBlockedWrites.
	s.writes.RLock()
	defer s.writes.RUnlock()
	var err error
	for range maxAttempts {
		err = s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("store: gave up after %d conflicting attempts: %w", maxAttempts, err)
}

// Create stores a new subject with its templates and watchlist memberships
// durably. It sets Created and Updated (UTC) and returns the subject as
// stored: watchlists sorted and deduplicated, templates as Get will return
// them. It fails with ErrExists if the id is taken and with an error wrapping
// ErrInvalid, naming the field, if sub fails validation (in which case
// nothing is written). Concurrent creates are committed together (see
// commit.go); each returns once its subject is on disk, and a subject is
// either wholly stored or not at all.
func (s *Store) Create(sub Subject) (Subject, error) {
	p, err := newCreate(sub)
	if err != nil {
		return Subject{}, err
	}
	if err := s.creates.submit(p); err != nil {
		if errors.Is(err, ErrClosed) {
			return Subject{}, fmt.Errorf("store: creating %q: %w", p.sub.ID, err)
		}
		return Subject{}, err
	}
	return *p.sub, nil
}

// newCreate validates and encodes sub for the committer.
func newCreate(sub Subject) (*pendingCreate, error) {
	return newCreateTime(sub, time.Now())
}

// newCreateTime is newCreate with the subject's Created and Updated at now.
func newCreateTime(sub Subject, now time.Time) (*pendingCreate, error) {
	samples, err := encodeSamples(sub.Samples)
	if err != nil {
		return nil, err
	}
	sub, enc, err := prepare(sub)
	if err != nil {
		return nil, err
	}
	now = time.Unix(0, now.UnixNano()).UTC() // what decoding will give back
	sub.Created, sub.Updated = now, now
	sub.SampleCount = len(samples)
	p := newPendingCreate(&sub, encodeRecord(&sub, len(enc)), enc)
	p.addSamples(samples)
	return p, nil
}

// Get returns the subject with its templates, or ErrNotFound.
func (s *Store) Get(id string) (Subject, error) {
	if validID(id) != nil {
		return Subject{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var sub Subject
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if sub, err = getSubject(txn, id, true); err != nil {
			return err
		}
		sub.SampleCount, err = sampleCount(txn, id)
		return err
	})
	return sub, err
}

// Delete removes the subject, its templates and watchlist memberships in
// one durable transaction and returns what it removed, or ErrNotFound.
func (s *Store) Delete(id string) (Subject, error) {
	if validID(id) != nil {
		return Subject{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var sub Subject
	err := s.update(func(txn *badger.Txn) error {
		var err error
		sub, err = deleteSubject(txn, id, true)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Subject{}, err
		}
		return Subject{}, fmt.Errorf("store: deleting %q: %w", id, err)
	}
	s.deletes.Add(1) // for Purge (gc.go)
	return sub, nil
}

// DeleteDamaged is Delete for a subject whose stored templates, or record,
// may not decode (a damaged disk, an older version's bytes): it removes
// the record, every template and sample key and the watchlist entries
// without reading the templates, and returns the subject without them.
// When the record does not decode either, the watchlist entries are found
// by walking every watchlist's keys, and the subject returned has only its
// id.
func (s *Store) DeleteDamaged(id string) (Subject, error) {
	if validID(id) != nil {
		return Subject{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var sub Subject
	err := s.update(func(txn *badger.Txn) error {
		var err error
		sub, err = deleteSubject(txn, id, false)
		if err == nil || errors.Is(err, ErrNotFound) {
			return err
		}
		if _, gerr := txn.Get(subjectKey(id)); gerr != nil {
			return err // not a record that fails to decode
		}
		sub = Subject{ID: id}
		return deleteUnreadable(txn, id)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Subject{}, err
		}
		return Subject{}, fmt.Errorf("store: deleting %q: %w", id, err)
	}
	s.deletes.Add(1)
	return sub, nil
}

// deleteSubject removes id's record, templates, samples and watchlist
// entries in txn and returns the subject as it was (with its templates if
// withTemplates), or ErrNotFound.
func deleteSubject(txn *badger.Txn, id string, withTemplates bool) (Subject, error) {
	sub, err := getSubject(txn, id, withTemplates)
	if err != nil {
		return Subject{}, err
	}
	if err := txn.Delete(subjectKey(id)); err != nil {
		return Subject{}, err
	}
	// Delete every template and sample key present, not just the count
	// the record names, so that nothing is left behind.
	var keys [][]byte
	for _, p := range [][]byte{templateKeyPrefix(id), sampleKeyPrefix(id)} {
		it := txn.NewIterator(iterOpts(p))
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return Subject{}, err
		}
	}
	for _, w := range sub.Watchlists {
		if err := txn.Delete(watchlistKey(w, id)); err != nil {
			return Subject{}, err
		}
	}
	return sub, nil
}

// deleteUnreadable deletes id's record, templates, samples and watchlist
// entries when its record cannot be read to name its watchlists.
func deleteUnreadable(txn *badger.Txn, id string) error {
	keys := [][]byte{subjectKey(id)}
	for _, p := range [][]byte{templateKeyPrefix(id), sampleKeyPrefix(id)} {
		it := txn.NewIterator(iterOpts(p))
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
	}
	// Watchlist keys are w/LIST/ID, and list names hold no '/'.
	it := txn.NewIterator(iterOpts([]byte(watchlistPrefix)))
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		rest := k[len(watchlistPrefix):]
		if i := bytes.IndexByte(rest, '/'); i >= 0 && string(rest[i+1:]) == id {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// getSubject reads one subject, with its templates if withTemplates.
func getSubject(txn *badger.Txn, id string, withTemplates bool) (Subject, error) {
	item, err := txn.Get(subjectKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Subject{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Subject{}, err
	}
	sub := Subject{ID: id}
	var n int
	if err := item.Value(func(v []byte) error {
		n, err = decodeRecord(v, &sub, nil)
		return err
	}); err != nil {
		return Subject{}, fmt.Errorf("store: subject %q: %w", id, err)
	}
	if withTemplates {
		if sub.Templates, err = loadTemplates(txn, id, n); err != nil {
			return Subject{}, err
		}
	}
	return sub, nil
}

// loadTemplates reads id's n templates.
func loadTemplates(txn *badger.Txn, id string, n int) ([]templates.Template, error) {
	it := txn.NewIterator(iterOpts(templateKeyPrefix(id)))
	defer it.Close()
	tpls := make([]templates.Template, 0, n)
	for it.Rewind(); it.Valid(); it.Next() {
		var err error
		tpls, err = appendTemplate(tpls, id, it.Item())
		if err != nil {
			return nil, err
		}
	}
	if len(tpls) != n {
		return nil, fmt.Errorf("store: subject %q: record names %d templates, %d stored", id, n, len(tpls))
	}
	return tpls, nil
}

// appendTemplate decodes the template in item and appends it to tpls. A
// template that does not decode is an error naming the subject.
func appendTemplate(tpls []templates.Template, id string, item *badger.Item) ([]templates.Template, error) {
	_, seq, _ := splitTemplateKey(item.Key())
	var t templates.Template
	if err := item.Value(t.UnmarshalBinary); err != nil {
		return nil, fmt.Errorf("store: subject %q: template %d: %w", id, seq, err)
	}
	return append(tpls, t), nil
}

// iterOpts are the options of every iterator here. Values are not
// prefetched: every value is far below Badger's ValueThreshold, so it lives
// in the LSM tree next to its key and Item.Value copies it into a buffer the
// iterator reuses, whereas prefetching starts a goroutine per item.
func iterOpts(prefix []byte) badger.IteratorOptions {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	return opts
}

// Count returns the number of subjects.
func (s *Store) Count() (int, error) {
	var n int
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = countPrefix(txn, []byte(subjectPrefix))
		return err
	})
	return n, err
}

// Each calls fn with every subject, templates included, in id order, for
// loading the matcher index at start. It streams: only the subject being
// passed to fn is decoded at any time. All subjects come from one consistent
// snapshot. An error from fn stops the walk and is returned as is; a
// subject whose record or a template does not decode, or whose templates do
// not match its record, is skipped and listed by Damage (see walk).
//
// fn must not keep a reference to anything but the Subject it is given (it
// may keep that).
func (s *Store) Each(fn func(Subject) error) error {
	lists := interner{}
	var sub Subject
	return s.walk(subjectWalker{
		record: func(id []byte, item *badger.Item) (int, error) {
			sub = Subject{ID: string(id)}
			var n int
			err := item.Value(func(v []byte) error {
				var err error
				n, err = decodeRecord(v, &sub, lists)
				return err
			})
			sub.Templates = make([]templates.Template, 0, n)
			return n, err
		},
		template: func(item *badger.Item) (err error) {
			sub.Templates, err = appendTemplate(sub.Templates, sub.ID, item)
			return err
		},
		done: func() error { return fn(sub) },
	})
}

// subjectWalker is what walk calls for each subject.
type subjectWalker struct {
	// record reads the subject record of id (both valid only during the
	// call) and returns the number of templates it names.
	record func(id []byte, item *badger.Item) (templates int, err error)
	// template is called with each of the subject's templates, in
	// sequence order.
	template func(item *badger.Item) error
	// done is called once the subject's templates are read; its error
	// stops the walk and is returned as is.
	done func() error
	// damaged, if set, is called instead of done for a subject that
	// cannot be read (see walk), and the walk goes on; unset, such a
	// subject is skipped. Either way it is listed by Damage.
	damaged func(id []byte, err error) error
}

// walk goes through every subject and its templates, in id order, from one
// consistent snapshot: the one key-range walk of Each and Scan. s/ and t/
// keys sort in the same id order (see the package comment), so two forward
// iterators advance in lock step. A subject that cannot be read (its record
// or a template fails to read or decode, or its stored templates do not
// match the count its record names) is skipped: a damaged subject must not
// keep the whole gallery from starting. Each one is logged with its error
// naming it and, once the walk is complete, listed by Damage. Templates
// without a subject record are skipped with a warning.
func (s *Store) walk(w subjectWalker) error {
	var damaged []SubjectDamage
	err := s.db.View(func(txn *badger.Txn) error {
		sit := txn.NewIterator(iterOpts([]byte(subjectPrefix)))
		defer sit.Close()
		tit := txn.NewIterator(iterOpts([]byte(templatePrefix)))
		defer tit.Close()

		orphans := 0
		tit.Rewind()
		for sit.Rewind(); sit.Valid(); sit.Next() {
			item := sit.Item()
			id := item.Key()[len(subjectPrefix):]
			n, bad := w.record(id, item)
			if bad != nil {
				bad = fmt.Errorf("store: subject %q: %w", id, bad)
			}
			got := 0
			for ; tit.Valid(); tit.Next() {
				titem := tit.Item()
				tid, _, ok := splitTemplateKey(titem.Key())
				if !ok {
					return fmt.Errorf("store: malformed template key %q", titem.Key())
				}
				c := bytes.Compare(tid, id)
				if c > 0 {
					break
				}
				if c < 0 {
					orphans++
					continue
				}
				got++
				if bad == nil {
					bad = w.template(titem)
				}
			}
			if bad == nil && got != n {
				bad = fmt.Errorf("store: subject %q: record names %d templates, %d stored", id, n, got)
			}
			if bad != nil {
				damaged = append(damaged, SubjectDamage{ID: string(id), Err: bad})
				if w.damaged != nil {
					// The engine quarantines it (listed, removable).
					if err := w.damaged(id, bad); err != nil {
						return err
					}
				}
				continue
			}
			if err := w.done(); err != nil {
				return err
			}
		}
		for ; tit.Valid(); tit.Next() {
			orphans++
		}
		if orphans > 0 {
			s.log.Warn().Int("templates", orphans).Msg("templates without a subject record ignored")
		}
		return nil
	})
	if err == nil {
		s.setDamaged(damaged)
	}
	return err
}

// CreatedSince returns the ids of the subjects created at or after t, in id
// order, reading only their records. matchd's start reconciles them with
// the audit trail (server/reconcile.go): an enrolment is committed before
// its call is answered and audited, so after a SIGKILL the newest subjects
// may have no audit record. A record that does not decode is skipped (the
// index load reports it).
func (s *Store) CreatedSince(t time.Time) ([]string, error) {
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		o := iterOpts([]byte(subjectPrefix))
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var sub Subject
			err := it.Item().Value(func(v []byte) error {
				_, err := decodeRecord(v, &sub, nil)
				return err
			})
			if err == nil && !sub.Created.Before(t) {
				ids = append(ids, string(it.Item().Key()[len(subjectPrefix):]))
			}
		}
		return nil
	})
	return ids, err
}
