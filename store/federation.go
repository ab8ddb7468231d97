package store

import (
	"errors"
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Federation state: what package federation keeps of the searches between
// agencies (references issued and their reviews, outbound references,
// audit heads received from partners). The store holds it as opaque values
// under its own prefix:
//
//	f/<key>  → package federation's value (JSON)
//
// Like the audit trail (a/) it is encrypted at rest with the rest of the
// gallery, written with synced transactions under the store's write hold,
// and neither in backups nor counted as gallery content: it describes
// exchanges, not subjects.

const federationPrefix = "f/"

// FederationKV is the federation state's storage in the gallery. Keys are
// package federation's, without the prefix; its methods are safe for
// concurrent use.
type FederationKV struct{ s *Store }

// Federation returns the gallery's federation state storage.
func (s *Store) Federation() *FederationKV { return &FederationKV{s: s} }

func fedKey(k string) ([]byte, error) {
	if k == "" || len(k) > 512 {
		return nil, fmt.Errorf("%w: federation key of %d bytes", ErrInvalid, len(k))
	}
	return []byte(federationPrefix + k), nil
}

// Get returns the value under key; found is false when there is none.
func (f *FederationKV) Get(key string) (value []byte, found bool, err error) {
	k, err := fedKey(key)
	if err != nil {
		return nil, false, err
	}
	err = f.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		value, err = item.ValueCopy(nil)
		return err
	})
	return value, found, err
}

// Put stores value under key, synced before it returns.
func (f *FederationKV) Put(key string, value []byte) error {
	k, err := fedKey(key)
	if err != nil {
		return err
	}
	return f.s.update(func(txn *badger.Txn) error { return txn.Set(k, value) })
}

// PutIfAbsent stores value under key unless the key exists; it reports
// whether it stored it.
func (f *FederationKV) PutIfAbsent(key string, value []byte) (bool, error) {
	k, err := fedKey(key)
	if err != nil {
		return false, err
	}
	stored := false
	err = f.s.update(func(txn *badger.Txn) error {
		stored = false
		if _, err := txn.Get(k); err == nil {
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		stored = true
		return txn.Set(k, value)
	})
	return stored, err
}

// Update reads the value under key (nil when absent), and stores what fn
// returns, in one transaction: Badger's conflict detection keeps
// concurrent updates of a key from losing one another (fn may run more
// than once; after a few conflicts in a row Update gives up with an
// error). Callers that update a key from many goroutines serialise
// themselves (package federation's Ledger does). fn returning an error
// writes nothing.
func (f *FederationKV) Update(key string, fn func(old []byte) ([]byte, error)) error {
	k, err := fedKey(key)
	if err != nil {
		return err
	}
	return f.s.update(func(txn *badger.Txn) error {
		var old []byte
		item, err := txn.Get(k)
		switch {
		case err == nil:
			if old, err = item.ValueCopy(nil); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		v, err := fn(old)
		if err != nil {
			return err
		}
		return txn.Set(k, v)
	})
}

// Delete removes key (no error when it is absent).
func (f *FederationKV) Delete(key string) error {
	k, err := fedKey(key)
	if err != nil {
		return err
	}
	return f.s.update(func(txn *badger.Txn) error { return txn.Delete(k) })
}

// Scan calls fn with every key (without the store's prefix) starting with
// prefix and its value, in key order, from one snapshot. value is valid
// only during the call; an error from fn stops the scan and is returned.
func (f *FederationKV) Scan(prefix string, fn func(key string, value []byte) error) error {
	p := []byte(federationPrefix + prefix)
	return f.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(iterOpts(p))
		defer it.Close()
		var buf []byte
		var err error
		for it.Seek(p); it.Valid(); it.Next() {
			item := it.Item()
			if buf, err = item.ValueCopy(buf[:0]); err != nil {
				return err
			}
			if err := fn(strings.TrimPrefix(string(item.Key()), federationPrefix), buf); err != nil {
				return err
			}
		}
		return nil
	})
}
