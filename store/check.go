package store

import (
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// CheckFiles verifies the files of the stopped gallery in opt.Dir without
// opening it: every table the MANIFEST names, read whole with its block and
// index checksums, and every value and write-ahead log's header. It
// returns the damaged files (Open refuses a gallery with any); an error is a
// MANIFEST or key registry that does not read, a wrong key, or a gallery in
// use (ErrLocked).
func CheckFiles(opt Options) ([]CorruptError, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	unlock, err := lockDir(opt.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return verifyFiles(opt)
}

// CheckReport is what Check found in an open gallery.
type CheckReport struct {
	// Subjects is the number of whole subjects; Damage.Subjects those that
	// do not read.
	Subjects int
	Damage   Damage
	// Values are the keys whose values do not read (a value log entry
	// whose checksum fails), and the subjects whose kept samples do not.
	Values []KeyDamage
}

// KeyDamage is one key whose value cannot be read.
type KeyDamage struct {
	Key string
	Err error
}

// OK reports whether nothing is damaged.
func (r CheckReport) OK() bool { return r.Damage.Empty() && len(r.Values) == 0 }

// Check reads everything the open gallery holds: every key's value (each
// value log entry's checksum is verified as it is read), every subject's
// record and templates, every subject's kept samples. Its findings are in
// the report; the error is a failure to read the gallery at all.
func (s *Store) Check() (CheckReport, error) {
	var rep CheckReport
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		var buf []byte
		for it.Rewind(); it.Valid(); it.Next() {
			var err error
			if err = catch(func() error { buf, err = it.Item().ValueCopy(buf[:0]); return err }); err != nil {
				rep.Values = append(rep.Values, KeyDamage{Key: string(it.Item().Key()), Err: err})
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("store: check: %w", err)
	}
	var ids []string
	if err := s.Each(func(sub Subject) error { ids = append(ids, sub.ID); return nil }); err != nil {
		return rep, fmt.Errorf("store: check: %w", err)
	}
	rep.Subjects = len(ids)
	rep.Damage = s.Damage()
	for _, id := range ids {
		if _, err := s.Samples(id); err != nil && !errors.Is(err, ErrNotFound) {
			rep.Values = append(rep.Values, KeyDamage{Key: string(sampleKeyPrefix(id)), Err: err})
		}
	}
	return rep, nil
}
