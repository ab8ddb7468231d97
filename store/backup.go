package store

// Online backup and restore.
//
// A backup is one consistent snapshot of the gallery (a single Badger read
// transaction: writes that commit while it streams are not in it, and none
// is half in it), written in a format of our own rather than Badger's
// KVList stream, so that a restore can check every byte before it trusts
// any and never depends on Badger's internal versions:
//
//	magic     "BMBACKUP"                                      8 bytes
//	version   3 if it holds log positions, else 2 (1: before
//	          kept samples; all three read)                    1 byte
//	schema    SchemaVersion                                   uvarint
//	created   unix nanoseconds                                varint
//	entries, in key order, each:
//	  'E' | uvarint len(key) | key | uvarint len(value) | value | crc32c of all of it, 4 bytes LE
//	trailer:
//	  'Z' | uvarint entries | uvarint subjects | SHA-256 of every byte before the 'Z', 32 bytes
//
// Only the gallery's namespaces (s/, t/, w/, from version 2 x/, the kept
// samples, and in version 3 l/, a cluster replica's log positions, see
// applied.go) are in it; jobs' state (meta/job/) is not. A backup is one
// snapshot, so the log positions in it are exactly those its subjects
// reflect: a replica restored from it resumes the log there. A gallery
// that never applied a log (every standalone one) writes version 2, which
// older builds restore. The file holds the
// gallery in the clear, whatever the store's encryption (a backup must
// restore under another master key): keep backup files encrypted and access
// controlled.
//
// Restore goes into an empty gallery only (no subjects), which is what
// recovering onto a new machine or a wiped directory needs, and it is all or
// nothing: entries are checked (checksum, key shape, record and template
// decoding, key order) as they arrive and written in batches, and if
// anything is wrong, including a missing or wrong trailer, everything
// written is dropped again and the gallery is empty as before.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/templates"
)

const (
	backupMagic   = "BMBACKUP"
	backupVersion = 3
	// backupVersionNoLog is what a backup without log positions is
	// written as.
	backupVersionNoLog = 2
	// maxBackupKey and maxBackupValue bound what a restore allocates for one
	// entry: keys are a prefix, an id and a few bytes; values a record, a
	// template or a chunk of a kept sample, at most 1 MiB.
	maxBackupKey   = 512
	maxBackupValue = 1 << 20
)

var (
	// ErrBadBackup: the backup stream is corrupt, truncated, or not a
	// Bordermatch backup; the wrapping error says where.
	ErrBadBackup = errors.New("store: bad backup")
	// ErrNotEmpty: Restore needs a gallery without subjects.
	ErrNotEmpty = errors.New("store: gallery is not empty")
)

// galleryPrefixes are the namespaces a backup holds, in key order.
var galleryPrefixes = []string{appliedPrefix, subjectPrefix, templatePrefix, watchlistPrefix, samplePrefix}

// BackupStats counts what a backup or restore held.
type BackupStats struct {
	Entries, Subjects, Templates, Samples int64
	Bytes                                 int64
}

// countingWriter hashes and counts what passes through.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// Backup writes a consistent snapshot of the gallery to w. It runs beside
// searches, enrolments and deletions.
func (s *Store) Backup(w io.Writer) (BackupStats, error) {
	var st BackupStats
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &countingWriter{w: bw, h: sha256.New()}
	var buf []byte
	err := s.db.View(func(txn *badger.Txn) error {
		version := byte(backupVersionNoLog)
		if n, err := countPrefix(txn, []byte(appliedPrefix)); err != nil {
			return err
		} else if n > 0 {
			version = backupVersion
		}
		if err := writeBackupHeader(cw, version); err != nil {
			return err
		}
		for _, p := range galleryPrefixes {
			it := txn.NewIterator(iterOpts([]byte(p)))
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				v, err := item.ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				if buf, err = writeBackupEntry(cw, buf, item.Key(), v); err != nil {
					it.Close()
					return err
				}
				st.Entries++
				switch p {
				case subjectPrefix:
					st.Subjects++
				case templatePrefix:
					st.Templates++
				case samplePrefix:
					if _, _, part, _ := splitSampleKey(item.Key()); part == 0 {
						st.Samples++
					}
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	if err := writeBackupTrailer(cw, st); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, err
	}
	st.Bytes = cw.n
	return st, nil
}

// writeBackupHeader writes the magic, version, schema and time.
func writeBackupHeader(cw *countingWriter, version byte) error {
	hdr := append([]byte(backupMagic), version)
	hdr = binary.AppendUvarint(hdr, SchemaVersion)
	hdr = binary.AppendVarint(hdr, time.Now().UnixNano())
	_, err := cw.Write(hdr)
	return err
}

// writeBackupEntry writes one entry, framing it in buf (returned for
// reuse).
func writeBackupEntry(cw *countingWriter, buf, key, val []byte) ([]byte, error) {
	buf = append(buf[:0], 'E')
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	buf = binary.AppendUvarint(buf, uint64(len(val)))
	buf = append(buf, val...)
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	_, err := cw.Write(buf)
	return buf, err
}

// writeBackupTrailer writes the counts and the SHA-256 of everything
// before it.
func writeBackupTrailer(cw *countingWriter, st BackupStats) error {
	sum := cw.h.Sum(nil)
	tr := []byte{'Z'}
	tr = binary.AppendUvarint(tr, uint64(st.Entries))
	tr = binary.AppendUvarint(tr, uint64(st.Subjects))
	tr = append(tr, sum...)
	_, err := cw.Write(tr)
	return err
}

// errSourceRead marks a failure to read the backup stream itself (a
// cancelled call), as opposed to what the stream holds.
var errSourceRead = errors.New("reading the backup stream")

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errSourceRead, err)
	}
	return n, err
}

// hashingReader hashes what is read through it.
type hashingReader struct {
	r   *bufio.Reader
	h   hash.Hash
	off int64
}

func (h *hashingReader) ReadByte() (byte, error) {
	b, err := h.r.ReadByte()
	if err == nil {
		h.h.Write([]byte{b})
		h.off++
	}
	return b, err
}

func (h *hashingReader) full(p []byte) error {
	n, err := io.ReadFull(h.r, p)
	h.h.Write(p[:n])
	h.off += int64(n)
	return err
}

// Restore loads a backup written by Backup into the gallery, which must have
// no subjects (ErrNotEmpty). A corrupt, truncated or foreign stream fails
// with an error wrapping ErrBadBackup that says where, and leaves the gallery
// empty. The caller must keep other writers away while Restore runs (the
// server holds every subject lock).
func (s *Store) Restore(r io.Reader) (BackupStats, error) {
	s.restoreMu.Lock()
	defer s.restoreMu.Unlock()
	var st BackupStats
	if err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range galleryPrefixes {
			if n, err := countPrefix(txn, []byte(p)); err != nil || n > 0 {
				if err == nil {
					err = fmt.Errorf("%w: it has keys under %q; restore needs an empty gallery", ErrNotEmpty, p)
				}
				return err
			}
		}
		return nil
	}); err != nil {
		return st, err
	}
	wrote := false
	st, err := s.restore(r, &wrote)
	if err != nil && wrote {
		if derr := s.dropGallery(); derr != nil {
			return st, fmt.Errorf("%w (and removing the partly restored entries failed: %v)", err, derr)
		}
	}
	return st, err
}

// dropGallery removes every gallery key, physically.
func (s *Store) dropGallery() error {
	ps := make([][]byte, len(galleryPrefixes))
	for i, p := range galleryPrefixes {
		ps[i] = []byte(p)
	}
	return s.dropPrefix(ps...)
}

func (s *Store) restore(r io.Reader, wrote *bool) (BackupStats, error) {
	var st BackupStats
	hr := &hashingReader{r: bufio.NewReaderSize(sourceReader{r}, 256<<10), h: sha256.New()}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: at byte %d: %s", ErrBadBackup, hr.off, fmt.Sprintf(format, a...))
	}
	eof := func(err error, what string) error {
		switch {
		case errors.Is(err, errSourceRead):
			return fmt.Errorf("store: restore: reading backup: %w", err)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return bad("truncated in %s", what)
		}
		return bad("malformed %s: %v", what, err) // a varint that overflows
	}
	magic := make([]byte, len(backupMagic)+1)
	if err := hr.full(magic); err != nil {
		return st, eof(err, "the header")
	}
	if string(magic[:len(backupMagic)]) != backupMagic {
		return st, bad("not a Bordermatch backup (no %q header)", backupMagic)
	}
	version := magic[len(backupMagic)]
	if version < 1 || version > backupVersion {
		return st, bad("backup format version %d; this build reads 1 to %d", version, backupVersion)
	}
	schema, err := binary.ReadUvarint(hr)
	if err != nil {
		return st, eof(err, "the header")
	}
	if schema != SchemaVersion {
		return st, bad("backup of gallery schema %d; this build reads %d", schema, SchemaVersion)
	}
	if _, err := binary.ReadVarint(hr); err != nil {
		return st, eof(err, "the header")
	}

	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var prev, key, val []byte
	var tpl templates.Template
	var sub Subject
	samples := sampleAssembler{drop: true}
	var sampleID []byte
	for {
		start := hr.off
		entryHash := crc32.New(castagnoli)
		// The frame type is hashed by hand: the trailer's SHA-256 covers
		// everything before its own 'Z'.
		kind, err := hr.r.ReadByte()
		if err != nil {
			return st, eof(err, "an entry")
		}
		hr.off++
		if kind == 'Z' {
			break
		}
		if kind != 'E' {
			return st, bad("entry %d: unknown frame type %#x", st.Entries+1, kind)
		}
		hr.h.Write([]byte{kind})
		entryHash.Write([]byte{kind})
		readBytes := func(max int, dst []byte, what string) ([]byte, error) {
			var lb [binary.MaxVarintLen64]byte
			n, err := binary.ReadUvarint(hr)
			if err != nil {
				return nil, eof(err, "an entry")
			}
			if n > uint64(max) {
				return nil, bad("entry %d: %s of %d bytes (at most %d)", st.Entries+1, what, n, max)
			}
			entryHash.Write(lb[:binary.PutUvarint(lb[:], n)])
			dst = append(dst[:0], make([]byte, n)...)
			if err := hr.full(dst); err != nil {
				return nil, eof(err, "an entry")
			}
			entryHash.Write(dst)
			return dst, nil
		}
		if key, err = readBytes(maxBackupKey, key, "key"); err != nil {
			return st, err
		}
		if val, err = readBytes(maxBackupValue, val, "value"); err != nil {
			return st, err
		}
		var crc [4]byte
		if err := hr.full(crc[:]); err != nil {
			return st, eof(err, "an entry")
		}
		if binary.LittleEndian.Uint32(crc[:]) != entryHash.Sum32() {
			return st, fmt.Errorf("%w: entry %d at byte %d: checksum mismatch", ErrBadBackup, st.Entries+1, start)
		}
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return st, bad("entry %d: key %q out of order", st.Entries+1, key)
		}
		prev = append(prev[:0], key...)
		if version < 2 && bytes.HasPrefix(key, []byte(samplePrefix)) {
			return st, bad("entry %d: a kept sample in a version %d backup", st.Entries+1, version)
		}
		if version < 3 && bytes.HasPrefix(key, []byte(appliedPrefix)) {
			return st, bad("entry %d: a log position in a version %d backup", st.Entries+1, version)
		}
		if err := checkEntry(key, val, &sub, &tpl); err != nil {
			var damaged *damagedTemplateError
			if !errors.As(err, &damaged) {
				return st, bad("entry %d: %v", st.Entries+1, err)
			}
			s.log.Warn().Err(err).Int64("entry", st.Entries+1).Msg("restoring a template that does not decode: its subject will be quarantined")
		}
		// A sample's chunks come in key order: each sample is decoded
		// (its checksum checked) once whole.
		if id, seq, part, ok := splitSampleKey(key); ok {
			if !bytes.Equal(id, sampleID) {
				if err := samples.flush(); err != nil {
					return st, bad("entry %d: subject %q: %v", st.Entries+1, sampleID, err)
				}
				sampleID = append(sampleID[:0], id...)
			}
			if err := samples.add(seq, part, val); err != nil {
				return st, bad("entry %d: subject %q: %v", st.Entries+1, id, err)
			}
			if part == 0 {
				st.Samples++
			}
		}
		switch {
		case bytes.HasPrefix(key, []byte(subjectPrefix)):
			st.Subjects++
		case bytes.HasPrefix(key, []byte(templatePrefix)):
			st.Templates++
		}
		st.Entries++
		*wrote = true
		// WriteBatch keeps the slices until it commits.
		if err := wb.Set(bytes.Clone(key), bytes.Clone(val)); err != nil {
			return st, fmt.Errorf("store: restore: %w", err)
		}
	}
	if err := samples.flush(); err != nil {
		return st, bad("subject %q: %v", sampleID, err)
	}
	sum := hr.h.Sum(nil)
	entries, err := binary.ReadUvarint(hr)
	if err != nil {
		return st, eof(err, "the trailer")
	}
	subjects, err := binary.ReadUvarint(hr)
	if err != nil {
		return st, eof(err, "the trailer")
	}
	var want [sha256.Size]byte
	if err := hr.full(want[:]); err != nil {
		return st, eof(err, "the trailer")
	}
	if entries != uint64(st.Entries) || subjects != uint64(st.Subjects) {
		return st, bad("trailer names %d entries and %d subjects, the backup holds %d and %d", entries, subjects, st.Entries, st.Subjects)
	}
	if !bytes.Equal(sum, want[:]) {
		return st, bad("SHA-256 of the backup does not match its trailer")
	}
	if _, err := hr.r.ReadByte(); err != io.EOF {
		return st, bad("data after the trailer")
	}
	if err := wb.Flush(); err != nil {
		return st, fmt.Errorf("store: restore: writing: %w", err)
	}
	// Every subject whole (its record and its templates' count): what the
	// index load needs. Templates are not decoded: one that does not
	// decode was let through above, for the load to quarantine.
	n := int64(0)
	if err := s.Scan(func(sub *IndexSubject) error {
		if sub.Damaged != nil {
			return fmt.Errorf("subject %q: %w", sub.ID, sub.Damaged)
		}
		n++
		return nil
	}); err != nil {
		return st, fmt.Errorf("%w: restored gallery does not load: %v", ErrBadBackup, err)
	}
	if n != st.Subjects {
		return st, fmt.Errorf("%w: %d subject records restored, %d load", ErrBadBackup, st.Subjects, n)
	}
	return st, nil
}

// damagedTemplateError is checkEntry's error for a template entry whose
// key is sound and whose value does not decode.
type damagedTemplateError struct{ err error }

func (e *damagedTemplateError) Error() string { return e.err.Error() }
func (e *damagedTemplateError) Unwrap() error { return e.err }

// checkEntry refuses an entry that is not a well-formed gallery key and
// value: a restored gallery must load. A template that does not decode is
// a *damagedTemplateError, which restore lets through.
func checkEntry(key, val []byte, sub *Subject, tpl *templates.Template) error {
	switch {
	case bytes.HasPrefix(key, []byte(subjectPrefix)):
		if err := validID(string(key[len(subjectPrefix):])); err != nil {
			return err
		}
		if _, err := decodeRecord(val, sub, nil); err != nil {
			return fmt.Errorf("subject %q: %w", key[len(subjectPrefix):], err)
		}
	case bytes.HasPrefix(key, []byte(templatePrefix)):
		id, seq, ok := splitTemplateKey(key)
		if !ok || validID(string(id)) != nil || seq >= MaxTemplates {
			return fmt.Errorf("malformed template key %q", key)
		}
		if err := tpl.UnmarshalBinary(val); err != nil {
			// The entry's checksum held, so these are the bytes the
			// backed-up gallery had (a damaged disk, an older version):
			// restored as they were, for the engine's load to quarantine
			// the subject, rather than refusing every other subject.
			return &damagedTemplateError{fmt.Errorf("subject %q template %d: %w", id, seq, err)}
		}
	case bytes.HasPrefix(key, []byte(samplePrefix)):
		id, seq, part, ok := splitSampleKey(key)
		if !ok || validID(string(id)) != nil || seq >= MaxSamples || part*sampleChunk >= MaxKeptBytes || len(val) > sampleChunk {
			return fmt.Errorf("malformed sample key %q (or a chunk of %d bytes)", key, len(val))
		}
	case bytes.HasPrefix(key, []byte(appliedPrefix)):
		if _, ok := splitAppliedKey(key); !ok {
			return fmt.Errorf("malformed log position key %q", key)
		}
		if seq, err := decodeSeq(val); err != nil || seq == 0 {
			return fmt.Errorf("log position key %q: bad sequence %x", key, val)
		}
	case bytes.HasPrefix(key, []byte(watchlistPrefix)):
		k := key[len(watchlistPrefix):]
		i := bytes.IndexByte(k, '/')
		if i <= 0 || ValidWatchlist(string(k[:i])) != nil || validID(string(k[i+1:])) != nil {
			return fmt.Errorf("malformed watchlist key %q", key)
		}
		if len(val) != 0 {
			return fmt.Errorf("watchlist key %q has a value", key)
		}
	default:
		return fmt.Errorf("key %q is not in the gallery's namespaces", key)
	}
	return nil
}
