package store

// Corrupt files (issue 19).
//
// Badger checks a table's checksums only when asked to, and when it is asked
// at open it drops a table whose blocks fail (logging it) and carries on
// without it: a gallery would start with subjects silently missing. A table
// whose footer or index is damaged panics inside one of Badger's opener
// goroutines, where no recover can reach it. So Open first reads every
// table the MANIFEST names itself, on its own goroutine under recover, and
// refuses a gallery with a damaged file by naming the file (CorruptError);
// only then is Badger opened, verifying each block again as it is read and
// each value log entry's checksum. `matchd check` reports the same findings
// without opening the gallery for writing, and Salvage copies out what is
// still readable.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrCorrupt: a file of the gallery fails its checksum or cannot be parsed.
// The wrapping *CorruptError names the file.
var ErrCorrupt = errors.New("store: gallery file is corrupt")

// CorruptError is a damaged file of the gallery.
type CorruptError struct {
	File string // path of the file
	Err  error  // what reading it found
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store: %s is corrupt: %v", e.File, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes every CorruptError an ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Damage is what a gallery holds that cannot be read.
type Damage struct {
	// Files are the damaged tables and value logs, in file name order.
	Files []CorruptError
	// Subjects are the subjects the last full walk (the index load, a
	// check) skipped because their record or templates could not be read,
	// in id order. Their keys stay in the gallery until deleted.
	Subjects []SubjectDamage
}

// SubjectDamage is one subject that cannot be read.
type SubjectDamage struct {
	ID  string
	Err error
}

// Empty reports whether nothing is damaged.
func (d Damage) Empty() bool { return len(d.Files) == 0 && len(d.Subjects) == 0 }

// String lists the damage, one finding a line.
func (d Damage) String() string {
	var b strings.Builder
	for _, f := range d.Files {
		fmt.Fprintf(&b, "file %s: %v\n", f.File, f.Err)
	}
	for _, s := range d.Subjects {
		fmt.Fprintf(&b, "subject %q: %v\n", s.ID, s.Err)
	}
	return b.String()
}

// Damage returns the subjects the last full walk of the gallery skipped as
// unreadable (Open refuses damaged files, so none are listed here).
func (s *Store) Damage() Damage {
	s.damageMu.Lock()
	defer s.damageMu.Unlock()
	return Damage{Subjects: append([]SubjectDamage(nil), s.damaged...)}
}

// setDamaged records the unreadable subjects a full walk found.
func (s *Store) setDamaged(d []SubjectDamage) {
	s.damageMu.Lock()
	s.damaged = d
	s.damageMu.Unlock()
	for _, sd := range d {
		s.log.Error().Str("subject", sd.ID).Err(sd.Err).Msg("subject unreadable: skipped (matchd check; matchd salvage)")
	}
}

// blockSize is Badger's default block size, which a table reader needs
// to be told.
const blockSize = 4 << 10

// tableFile is a table the MANIFEST names.
type tableFile struct {
	id   uint64
	path string
	man  badger.TableManifest
}

// galleryTables reads dir's MANIFEST: the tables Badger would open, in id
// order. A MANIFEST that does not parse is a CorruptError naming it.
func galleryTables(dir string) ([]tableFile, error) {
	path := filepath.Join(dir, badger.ManifestFilename)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // a new gallery
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	var man badger.Manifest
	if err := catch(func() error {
		var err error
		man, _, err = badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir))
		return err
	}); err != nil {
		return nil, &CorruptError{File: path, Err: err}
	}
	tables := make([]tableFile, 0, len(man.Tables))
	for id, tm := range man.Tables {
		tables = append(tables, tableFile{id: id, path: table.NewFilename(id, dir), man: tm})
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].id < tables[j].id })
	return tables, nil
}

// catch runs fn and turns a panic in it into a *panicError: Badger panics
// on some malformed files rather than failing.
func catch(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{r}
		}
	}()
	return fn()
}

type panicError struct{ v any }

func (e *panicError) Error() string {
	return fmt.Sprintf("unreadable (Badger's reader failed on it: %v)", e.v)
}

// tableReader opens a gallery's tables outside Badger, with its data keys.
type tableReader struct {
	kr    *badger.KeyRegistry
	index *ristretto.Cache[uint64, *fb.TableIndex]
}

func newTableReader(opt Options) (*tableReader, error) {
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{
		Dir: opt.Dir, ReadOnly: true, EncryptionKey: opt.EncryptionKey,
		EncryptionKeyRotationDuration: DefaultDataKeyRotation,
	})
	if err != nil {
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil, fmt.Errorf("%w: %s", ErrKeyMismatch, opt.Dir)
		}
		return nil, &CorruptError{File: filepath.Join(opt.Dir, badger.KeyRegistryFileName), Err: err}
	}
	r := &tableReader{kr: kr}
	if len(opt.EncryptionKey) > 0 {
		// Encrypted tables keep their decrypted index in this cache.
		r.index, err = ristretto.NewCache(&ristretto.Config[uint64, *fb.TableIndex]{
			NumCounters: 1 << 12, MaxCost: indexCacheBytes, BufferItems: 64})
		if err != nil {
			kr.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *tableReader) close() {
	if r.index != nil {
		r.index.Close()
	}
	r.kr.Close()
}

// open opens one table read-only with Badger's table reader: mode
// OnTableAndBlockRead reads it whole, verifying every block; OnBlockRead
// only its index, verifying each block when it is read. A panic is a
// CorruptError naming the file.
func (r *tableReader) open(tf tableFile, mode options.ChecksumVerificationMode) (*table.Table, error) {
	var t *table.Table
	err := catch(func() error {
		dk, err := r.kr.DataKey(tf.man.KeyID)
		if err != nil {
			return err
		}
		mf, err := z.OpenMmapFile(tf.path, os.O_RDONLY, 0)
		if errors.Is(err, z.NewFile) {
			_ = mf.Close(-1)
			return errors.New("empty file")
		}
		if err != nil {
			return err
		}
		t, err = table.OpenTable(mf, table.Options{
			ReadOnly: true, ChkMode: mode, Compression: tf.man.Compression,
			BlockSize: blockSize, DataKey: dk, IndexCache: r.index,
		})
		return err
	})
	if err != nil {
		return nil, &CorruptError{File: tf.path, Err: err}
	}
	return t, nil
}

// closeTable unmaps t without deleting its file (DecrRef would).
func closeTable(t *table.Table) { _ = t.MmapFile.Close(-1) }

// verifyFiles reads every table the MANIFEST of opt.Dir names, whole, and
// every value log's header, and returns the damaged files. A MANIFEST or key
// registry that does not read is the error.
func verifyFiles(opt Options) ([]CorruptError, error) {
	if _, err := os.Stat(filepath.Join(opt.Dir, badger.ManifestFilename)); errors.Is(err, os.ErrNotExist) {
		return nil, nil // a new gallery
	}
	tables, err := galleryTables(opt.Dir)
	if err != nil {
		return nil, err
	}
	r, err := newTableReader(opt)
	if err != nil {
		return nil, err
	}
	defer r.close()
	bad := r.verifyValueLogs(opt.Dir)
	for _, tf := range tables {
		t, err := r.open(tf, options.OnTableAndBlockRead)
		if err != nil {
			var ce *CorruptError
			errors.As(err, &ce)
			bad = append(bad, *ce)
			continue
		}
		closeTable(t)
	}
	return bad, nil
}

// vlogHeaderSize is a value log file's header: the id of its data key (8
// bytes) and its IV (12).
const vlogHeaderSize = 20

// verifyValueLogs checks every value log's and write-ahead log's header: Badger fails to open a
// gallery whose value log names a data key it does not have. The entries'
// checksums are verified as they are read (Check reads them all).
func (r *tableReader) verifyValueLogs(dir string) []CorruptError {
	// The write-ahead logs (.mem) have the same header.
	logs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	logs = append(logs, mems...)
	sort.Strings(logs)
	var bad []CorruptError
	for _, path := range logs {
		b := make([]byte, vlogHeaderSize)
		f, err := os.Open(path)
		if err == nil {
			_, err = io.ReadFull(f, b)
			f.Close()
		}
		if err == nil {
			_, err = r.kr.DataKey(binary.BigEndian.Uint64(b))
			if err != nil {
				err = fmt.Errorf("its header names data key %d: %w", binary.BigEndian.Uint64(b), err)
			}
		}
		if err != nil {
			bad = append(bad, CorruptError{File: path, Err: err})
		}
	}
	return bad
}

// corruptFilesError is Open's refusal of damaged files.
func corruptFilesError(dir string, bad []CorruptError) error {
	names := make([]string, len(bad))
	for i, b := range bad {
		names[i] = filepath.Base(b.File)
	}
	e := bad[0]
	e.Err = fmt.Errorf("%v (damaged in %s: %s; not started: `matchd check` lists the damage, `matchd salvage` copies what is readable into a new data directory)",
		e.Err, dir, strings.Join(names, ", "))
	return &e
}
