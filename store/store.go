// Package store is the Badger-backed gallery: the source of truth for
// subjects, their templates and watchlists. The in-memory matcher index is
// rebuilt from it at start (see Each).
//
// # Key layout
//
// Every key starts with a one-letter namespace and a '/'. Subject ids are
// restricted to [A-Za-z0-9._:@-] and watchlist names to [A-Za-z0-9._-], so
// neither can contain '/' or NUL and every prefix scan below is exact.
//
//	meta/schema              → schema version, ASCII decimal ("1"). Open
//	                           writes it into an empty database and refuses a
//	                           database whose version it does not know.
//	s/<id>                   → subject record: the non-template fields in a
//	                           compact versioned binary form with a CRC-32C
//	                           (see record.go), including how many templates
//	                           the subject has.
//	t/<id> 0x00 <seq:2 BE>   → one template in the templates package encoding
//	                           (templates.Template.MarshalBinary), seq 0..15.
//	w/<list>/<id>            → empty; watchlist membership, for List by
//	                           watchlist and for Watchlists' counts.
//	l/<shard:4 BE>           → the log sequence a cluster replica applied
//	                           last of a logical shard, 8 bytes BE; written
//	                           in the transaction of the change it applies
//	                           (applied.go).
//	a/r/<seq:8 BE>, a/head   → the audit trail's records and chain head,
//	                           kept for package audit through AuditTrail
//	                           (audit.go).
//
// The template keys separate id and sequence number with a NUL byte rather
// than '/': NUL sorts below every byte an id may contain, so t/ keys sort in
// exactly the same order as s/ keys ("A1" < "A1-2" holds for both, whereas
// "t/A1/" would sort after "t/A1-2/" because '-' < '/'). That lets Each walk
// subjects and templates with two forward iterators in lock step instead of
// one seek per subject.
//
// A subject's record, templates and watchlist entries are always written and
// deleted together in one transaction, and with SyncWrites every transaction
// is on disk before the call returns. Concurrent creates share a transaction
// (and its one sync): see commit.go.
package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"
)

// SchemaVersion is the key layout and record format this package reads and
// writes.
const SchemaVersion = 1

var (
	// ErrNotFound: no subject has the id.
	ErrNotFound = errors.New("store: subject not found")
	// ErrExists: a subject with the id already exists.
	ErrExists = errors.New("store: subject already exists")
	// ErrInvalidPageToken: a List page token is malformed or belongs to a
	// different listing.
	ErrInvalidPageToken = errors.New("store: invalid page token")
	// ErrInvalid: a subject or request failed validation; the wrapping error
	// names the field.
	ErrInvalid = errors.New("store: invalid")
	// ErrLocked: the directory is in use by another open Store (in this or
	// another process).
	ErrLocked = errors.New("store: database directory is locked by another process")
	// ErrKeyMismatch: the encryption key does not open the gallery.
	ErrKeyMismatch = errors.New("store: encryption key does not match the gallery")
)

// indexCacheBytes bounds the memory for decrypted table indexes of an
// encrypted gallery. A million face templates make about 30 tables, whose
// indexes take a few MiB.
const indexCacheBytes = 64 << 20

// Options configures Open.
type Options struct {
	// Dir is the database directory; it is created if missing. Required
	// unless InMemory.
	Dir string
	// Logger receives Badger's own warnings and errors, and the store's
	// warnings. The zero Logger discards everything.
	Logger zerolog.Logger
	// InMemory keeps everything in memory and writes nothing to disk. Only
	// for tests that explicitly want it.
	InMemory bool
	// EncryptionKey, when set, is the master key (16, 24 or 32 bytes:
	// AES-128, -192 or -256) that encrypts everything Badger writes: tables,
	// write-ahead logs, value logs. Badger encrypts with data keys it keeps
	// in its KEYREGISTRY file, itself encrypted with this key (see key.go).
	// A gallery created without a key cannot be opened with one, nor the
	// other way round (ErrKeyMismatch).
	EncryptionKey []byte
	// DataKeyRotation is how often Badger starts a new data key
	// (DefaultDataKeyRotation in DefaultOptions; 0 here also means
	// Badger's default, which is the same).
	DataKeyRotation time.Duration

	// uncompressed turns Badger's block compression off and makes its
	// preallocated value log small, for tests that grep the files for what
	// they hold.
	uncompressed bool
}

// DefaultDataKeyRotation is Badger's own period of data-key rotation.
const DefaultDataKeyRotation = 10 * 24 * time.Hour

// DefaultOptions returns the options of a gallery in dir, unencrypted.
func DefaultOptions(dir string) Options {
	return Options{Dir: dir, DataKeyRotation: DefaultDataKeyRotation}
}

// Validate names the first option that is wrong.
func (o Options) Validate() error {
	switch {
	case o.Dir == "" && !o.InMemory:
		return fmt.Errorf("%w: Options.Dir is required", ErrInvalid)
	case o.DataKeyRotation < 0:
		return fmt.Errorf("%w: Options.DataKeyRotation %v is negative", ErrInvalid, o.DataKeyRotation)
	case len(o.EncryptionKey) > 0:
		if err := checkKeyLen(o.EncryptionKey); err != nil {
			return fmt.Errorf("Options.EncryptionKey: %w", err)
		}
	}
	return nil
}

// Store is an open gallery. Its methods are safe for concurrent use.
type Store struct {
	db      *badger.DB
	log     zerolog.Logger
	creates *committer // group commit of Create (commit.go)

	closeOnce sync.Once
	closeErr  error

	// Purge and Restore (gc.go, backup.go). writes is held shared by every
	// write transaction and exclusively around Badger's DropPrefix, which
	// refuses writes while it runs.
	writes    sync.RWMutex
	purgeMu   sync.Mutex
	deletes   atomic.Int64
	restoreMu sync.Mutex

	// What the last full walk found unreadable (verify.go).
	damageMu sync.Mutex
	damaged  []SubjectDamage
}

var schemaKey = []byte("meta/schema")

// Open opens (creating if needed) the gallery in opt.Dir. Every write is
// synced to disk before it returns. Opening a directory another Store holds
// open fails with an error wrapping ErrLocked.
func Open(opt Options) (*Store, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	log := opt.Logger.With().Str("component", "store").Logger()
	var bo badger.Options
	if opt.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	} else {
		bo = badger.DefaultOptions(opt.Dir)
	}
	// Every table was read whole just above (verify.go), so Badger
	// need not read them all again at open: it verifies each block as it
	// reads it, and each value log entry.
	bo = bo.WithSyncWrites(true).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithLogger(badgerLogger{opt.Logger.With().Str("component", "badger").Logger()})
	if opt.uncompressed {
		bo = bo.WithCompression(options.None).WithValueLogFileSize(1 << 20)
	}
	if len(opt.EncryptionKey) > 0 {
		// Badger requires an index cache with encryption: decrypted table
		// indexes live there instead of in the mmapped files.
		bo = bo.WithEncryptionKey(opt.EncryptionKey).WithIndexCacheSize(indexCacheBytes)
		if opt.DataKeyRotation > 0 {
			bo = bo.WithEncryptionKeyRotationDuration(opt.DataKeyRotation)
		}
	}
	if !opt.InMemory {
		bad, err := verifyFiles(opt)
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, corruptFilesError(opt.Dir, bad)
		}
	}
	var db *badger.DB
	err := catch(func() error {
		var err error
		db, err = badger.Open(bo)
		return err
	})
	if err != nil {
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			if len(opt.EncryptionKey) == 0 {
				return nil, fmt.Errorf("%w: %s is encrypted and no key was given", ErrKeyMismatch, opt.Dir)
			}
			return nil, fmt.Errorf("%w: %s was encrypted with another key, or is not encrypted", ErrKeyMismatch, opt.Dir)
		}
		// Badger formats the flock failure into its message without
		// wrapping it; TestOpenLocked pins the text.
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s (is another bordermatch running on it?): %v", ErrLocked, opt.Dir, err)
		}
		if pe := (*panicError)(nil); errors.As(err, &pe) {
			return nil, &CorruptError{File: opt.Dir, Err: err}
		}
		return nil, fmt.Errorf("store: opening %s: %w", opt.Dir, err)
	}
	s := &Store{db: db, log: log}
	if err := s.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	s.creates = newCommitter(db.MaxBatchCount(), db.MaxBatchSize(), s.commitGroup)
	return s, nil
}

// checkSchema writes the schema version into a new database and refuses one
// written by a newer (or unknown) version of this package.
func (s *Store) checkSchema() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if n, err := countPrefix(txn, nil); err != nil {
				return err
			} else if n > 0 {
				return fmt.Errorf("store: database has %d keys but no schema version; not a bordermatch gallery?", n)
			}
			return txn.Set(schemaKey, []byte(strconv.Itoa(SchemaVersion)))
		}
		if err != nil {
			return fmt.Errorf("store: reading schema version: %w", err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("store: reading schema version: %w", err)
		}
		n, err := strconv.Atoi(string(v))
		switch {
		case err != nil:
			return fmt.Errorf("store: unreadable schema version %q", v)
		case n > SchemaVersion:
			return fmt.Errorf("store: gallery schema version %d is newer than this build supports (%d); run a newer bordermatch", n, SchemaVersion)
		case n != SchemaVersion:
			return fmt.Errorf("store: gallery schema version %d is not supported (this build reads %d)", n, SchemaVersion)
		}
		return nil
	})
}

// DB is the underlying Badger database, for tests that inspect or tamper
// with the stored bytes. Nothing in the product writes through it: the
// audit trail goes through AuditTrail, which takes the write hold.
func (s *Store) DB() *badger.DB { return s.db }

// Close commits the creates already waiting (their callers get their usual
// answer), then flushes and closes the database; a Create after Close fails
// with ErrClosed. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.creates.close()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// badgerLogger routes Badger's logging to zerolog at warning level and above;
// Badger's info and debug chatter is dropped.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error().Msg(strings.TrimRight(fmt.Sprintf(f, a...), "\n"))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn().Msg(strings.TrimRight(fmt.Sprintf(f, a...), "\n"))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// Keys.

const (
	subjectPrefix   = "s/"
	templatePrefix  = "t/"
	watchlistPrefix = "w/"
	templateSep     = 0x00
)

func subjectKey(id string) []byte {
	return append([]byte(subjectPrefix), id...)
}

// templateKeyPrefix is the prefix of all of id's template keys.
func templateKeyPrefix(id string) []byte {
	k := make([]byte, 0, len(templatePrefix)+len(id)+3)
	k = append(k, templatePrefix...)
	k = append(k, id...)
	return append(k, templateSep)
}

func templateKey(id string, seq int) []byte {
	return append(templateKeyPrefix(id), byte(seq>>8), byte(seq))
}

// splitTemplateKey returns the id and sequence number of a template key.
func splitTemplateKey(k []byte) (id []byte, seq int, ok bool) {
	n := len(k)
	if n < len(templatePrefix)+1+3 || k[n-3] != templateSep {
		return nil, 0, false
	}
	return k[len(templatePrefix) : n-3], int(k[n-2])<<8 | int(k[n-1]), true
}

func watchlistKeyPrefix(list string) []byte {
	return append(append([]byte(watchlistPrefix), list...), '/')
}

func watchlistKey(list, id string) []byte {
	return append(watchlistKeyPrefix(list), id...)
}

// countPrefix counts the keys under prefix without reading values.
func countPrefix(txn *badger.Txn, prefix []byte) (int, error) {
	it := txn.NewIterator(iterOpts(prefix))
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n, nil
}
