package store

// Salvage: what is still readable in a damaged gallery, in the backup
// format, for a restore into a new one (matchd salvage).
//
// The damaged gallery is never written. Its files are copied into a
// scratch directory without the damaged tables, whose MANIFEST is rewritten
// to name only the sound ones, so Badger opens the copy as a gallery that
// lost those tables. The damaged tables are then read block by block
// outside Badger: every entry of a block that passes its checksum is put
// back into the copy, unless the copy holds a newer version of its key
// (a table can hold an old version of a key another table overrides).
// Only whole subjects go into the backup: a record that decodes with all
// the templates it names; watchlist entries are written from the record;
// kept samples only when all of them read. Everything else is reported:
// the damaged files, the key ranges of the blocks that did not read, and
// every subject id found in pieces (a record without its templates,
// templates, watchlist entries or samples without a record).

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
)

// Badger's entry meta bits (value.go): a deletion, a value in the value log.
const (
	metaDelete       = 1 << 0
	metaValuePointer = 1 << 1
)

// SalvageReport is what Salvage kept and what it lost.
type SalvageReport struct {
	// Backup counts what the backup written holds.
	Backup BackupStats
	// Damage: the damaged files, and the subjects not in the backup
	// because a part of them did not read (Err says which).
	Damage Damage
	// LostRanges are the key ranges of the damaged tables' blocks that did
	// not read ("from … to …"), or a whole table's when its index did not.
	LostRanges []string
	// Recovered is the number of entries read back from damaged tables.
	Recovered int
	// SamplesDropped are subjects kept without their kept samples, which
	// did not all read (their templates are whole).
	SamplesDropped []string
}

// Salvage writes every whole subject of the stopped gallery opt.Dir to w
// in the backup format (Restore reads it) and reports what it could not
// read. It refuses a gallery another process holds open (ErrLocked). A
// MANIFEST or key registry that does not read is a CorruptError: without
// them no table can be read.
func Salvage(opt Options, w io.Writer) (SalvageReport, error) {
	var rep SalvageReport
	if err := opt.Validate(); err != nil {
		return rep, err
	}
	unlock, err := lockDir(opt.Dir)
	if err != nil {
		return rep, err
	}
	defer unlock()
	tables, err := galleryTables(opt.Dir)
	if err != nil {
		return rep, err
	}
	bad, err := verifyFiles(opt)
	if err != nil {
		return rep, err
	}
	rep.Damage.Files = bad
	scratch, err := os.MkdirTemp("", "bordermatch-salvage-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(scratch)
	isBad := map[string]bool{}
	for _, b := range bad {
		isBad[b.File] = true
	}
	if err := copyGallery(opt.Dir, scratch, isBad); err != nil {
		return rep, err
	}
	var good []tableFile
	var damaged []tableFile
	for _, tf := range tables {
		if isBad[tf.path] {
			damaged = append(damaged, tf)
		} else {
			good = append(good, tf)
		}
	}
	if len(damaged) > 0 {
		if err := writeManifest(scratch, good); err != nil {
			return rep, err
		}
	}
	var entries map[string]salvagedEntry
	if len(damaged) > 0 {
		r, err := newTableReader(opt)
		if err != nil {
			return rep, err
		}
		entries = map[string]salvagedEntry{}
		for _, tf := range damaged {
			rep.LostRanges = append(rep.LostRanges, r.readBlocks(tf, entries)...)
		}
		r.close()
	}
	sopt := opt
	sopt.Dir = scratch
	sopt.Logger = zerolog.Nop()
	s, err := Open(sopt)
	if err != nil {
		return rep, fmt.Errorf("store: salvage: opening the sound tables: %w", err)
	}
	defer s.Close()
	if rep.Recovered, err = s.putBack(entries); err != nil {
		return rep, err
	}
	rep.Backup, rep.Damage.Subjects, rep.SamplesDropped, err = s.backupWhole(w)
	return rep, err
}

// lockDir takes the lock Badger takes on dir (a flock of the directory
// itself), so that a salvage or a check never reads a gallery a running
// matchd writes.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s (stop matchd first): %v", ErrLocked, dir, err)
	}
	return func() { f.Close() }, nil
}

// copyGallery copies every file of src into dst but the skipped ones and
// the lock.
func copyGallery(src, dst string, skip map[string]bool) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range ents {
		path := filepath.Join(src, e.Name())
		if !e.Type().IsRegular() || skip[path] || e.Name() == "LOCK" {
			continue
		}
		if err := copyFile(path, filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("store: salvage: copying %s: %w", path, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeManifest writes dir's MANIFEST naming only tables, in Badger's
// format (manifest.go: magic, then length, CRC-32C and one change set).
func writeManifest(dir string, tables []tableFile) error {
	set := pb.ManifestChangeSet{}
	for _, tf := range tables {
		set.Changes = append(set.Changes, &pb.ManifestChange{
			Id: tf.id, Op: pb.ManifestChange_CREATE, Level: uint32(tf.man.Level),
			KeyId: tf.man.KeyID, EncryptionAlgo: pb.EncryptionAlgo_aes, Compression: uint32(tf.man.Compression),
		})
	}
	data, err := proto.Marshal(&set)
	if err != nil {
		return err
	}
	const badgerMagicVersion = 8 // Badger v4's manifest version
	b := []byte{'B', 'd', 'g', 'r', 0, 0}
	b = binary.BigEndian.AppendUint16(b, badgerMagicVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(data, y.CastagnoliCrcTable))
	b = append(b, data...)
	return os.WriteFile(filepath.Join(dir, badger.ManifestFilename), b, 0o600)
}

// salvagedEntry is the newest version of a key read from a damaged table.
type salvagedEntry struct {
	version uint64
	meta    byte
	value   []byte
}

// readBlocks reads every block of a damaged table that passes its checksum
// into entries (the newest version of each key) and returns the key ranges
// of those that do not.
func (r *tableReader) readBlocks(tf tableFile, entries map[string]salvagedEntry) (lost []string) {
	t, err := r.open(tf, options.OnBlockRead)
	if err != nil {
		return []string{fmt.Sprintf("all of %s (its index does not read: %v)", filepath.Base(tf.path), err)}
	}
	defer closeTable(t)
	var bases []string
	if err := catch(func() error { bases = t.KeySplits(math.MaxInt32, nil); return nil }); err != nil {
		return []string{fmt.Sprintf("all of %s (%v)", filepath.Base(tf.path), err)}
	}
	for i, base := range bases {
		var end []byte
		if i+1 < len(bases) {
			end = []byte(bases[i+1])
		}
		n := 0
		err := catch(func() error {
			it := t.NewIterator(table.NOCACHE)
			defer it.Close()
			for it.Seek([]byte(base)); it.Valid(); it.Next() {
				k := it.Key()
				if end != nil && y.CompareKeys(k, end) >= 0 {
					break
				}
				n++
				key, ver := y.ParseKey(k), y.ParseTs(k)
				if e, ok := entries[string(key)]; ok && e.version >= ver {
					continue
				}
				v := it.ValueCopy()
				entries[string(key)] = salvagedEntry{version: ver, meta: v.Meta, value: v.Value}
			}
			return nil
		})
		if err != nil || n == 0 {
			to := "the end of the table"
			if end != nil {
				to = fmt.Sprintf("%q", y.ParseKey(end))
			}
			lost = append(lost, fmt.Sprintf("%s: block %d, keys from %q to %s", filepath.Base(tf.path), i, y.ParseKey([]byte(base)), to))
		}
	}
	return lost
}

// putBack writes the entries read from damaged tables into the gallery,
// each unless the gallery holds a newer version of its key, and returns how
// many it wrote. A value kept in the value log is not read back (the
// gallery's values are far below Badger's value threshold).
func (s *Store) putBack(entries map[string]salvagedEntry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	newest := map[string]uint64{}
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues, o.AllVersions = false, true
		it := txn.NewIterator(o)
		defer it.Close()
		for _, k := range keys {
			it.Seek([]byte(k))
			if it.Valid() && string(it.Item().Key()) == k {
				newest[k] = it.Item().Version()
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	for _, k := range keys {
		e := entries[k]
		if v, ok := newest[k]; ok && v >= e.version || e.meta&metaValuePointer != 0 {
			continue
		}
		if e.meta&metaDelete != 0 {
			err = wb.Delete([]byte(k))
		} else {
			err = wb.Set([]byte(k), e.value)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, wb.Flush()
}

// backupWhole writes the whole subjects in the backup format and returns
// the subjects left out and those kept without their samples.
func (s *Store) backupWhole(w io.Writer) (st BackupStats, lost []SubjectDamage, noSamples []string, err error) {
	whole := map[string][]string{} // id → watchlists
	if err := s.Each(func(sub Subject) error { whole[sub.ID] = sub.Watchlists; return nil }); err != nil {
		return st, nil, nil, err
	}
	lost = s.Damage().Subjects
	pieces := map[string]string{} // ids with parts but no whole subject
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &countingWriter{w: bw, h: sha256.New()}
	var buf []byte
	err = s.db.View(func(txn *badger.Txn) error {
		version := byte(backupVersionNoLog)
		if n, err := countPrefix(txn, []byte(appliedPrefix)); err != nil {
			return err
		} else if n > 0 {
			version = backupVersion
		}
		if err := writeBackupHeader(cw, version); err != nil {
			return err
		}
		emit := func(key, val []byte) error {
			var err error
			buf, err = writeBackupEntry(cw, buf, key, val)
			st.Entries++
			return err
		}
		// Log positions, records and templates, in key order.
		for _, p := range []string{appliedPrefix, subjectPrefix, templatePrefix} {
			it := txn.NewIterator(iterOpts([]byte(p)))
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				var id []byte
				switch p {
				case subjectPrefix:
					id = k[len(subjectPrefix):]
				case templatePrefix:
					id, _, _ = splitTemplateKey(k)
				}
				if id != nil {
					if _, ok := whole[string(id)]; !ok {
						pieces[string(id)] = p
						continue
					}
				}
				v, err := it.Item().ValueCopy(nil)
				if err == nil && p == appliedPrefix {
					_, err = decodeSeq(v)
				}
				if err != nil {
					it.Close()
					return fmt.Errorf("store: salvage: %q: %w", k, err)
				}
				if err := emit(k, v); err != nil {
					it.Close()
					return err
				}
				switch p {
				case subjectPrefix:
					st.Subjects++
				case templatePrefix:
					st.Templates++
				}
			}
			it.Close()
		}
		// Watchlist entries from the records, which say what they are.
		var wl [][]byte
		for id, lists := range whole {
			for _, l := range lists {
				wl = append(wl, watchlistKey(l, id))
			}
		}
		sort.Slice(wl, func(i, j int) bool { return bytes.Compare(wl[i], wl[j]) < 0 })
		for _, k := range wl {
			if err := emit(k, nil); err != nil {
				return err
			}
		}
		it := txn.NewIterator(iterOpts([]byte(watchlistPrefix)))
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(watchlistPrefix):]
			if i := bytes.IndexByte(k, '/'); i >= 0 {
				if _, ok := whole[string(k[i+1:])]; !ok {
					pieces[string(k[i+1:])] = watchlistPrefix
				}
			}
		}
		it.Close()
		// Kept samples, a subject's all or none.
		var n int
		noSamples, n, err = s.wholeSamples(txn, whole, pieces, emit)
		st.Samples = int64(n)
		return err
	})
	if err != nil {
		return st, lost, noSamples, err
	}
	if err := writeBackupTrailer(cw, st); err != nil {
		return st, lost, noSamples, err
	}
	if err := bw.Flush(); err != nil {
		return st, lost, noSamples, err
	}
	st.Bytes = cw.n
	listed := map[string]bool{}
	for _, d := range lost {
		listed[d.ID] = true
	}
	for id, p := range pieces {
		if !listed[id] {
			lost = append(lost, SubjectDamage{ID: id, Err: fmt.Errorf("store: subject %q: its record is lost (%s keys remain)", id, p)})
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].ID < lost[j].ID })
	return st, lost, noSamples, nil
}

// wholeSamples emits the kept samples of the whole subjects whose samples
// all read, and returns the subjects whose samples did not and how many
// samples it emitted.
func (s *Store) wholeSamples(txn *badger.Txn, whole map[string][]string, pieces map[string]string,
	emit func(k, v []byte) error) (dropped []string, n int, err error) {
	type chunk struct{ k, v []byte }
	var (
		cur    []byte
		chunks []chunk
		broken bool
		asm    = sampleAssembler{drop: true}
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		if !broken && asm.flush() != nil {
			broken = true
		}
		if broken {
			dropped = append(dropped, string(cur))
		} else {
			for _, c := range chunks {
				if err := emit(c.k, c.v); err != nil {
					return err
				}
				if _, _, part, _ := splitSampleKey(c.k); part == 0 {
					n++
				}
			}
		}
		cur, chunks, broken, asm = nil, nil, false, sampleAssembler{drop: true}
		return nil
	}
	it := txn.NewIterator(iterOpts([]byte(samplePrefix)))
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		id, seq, part, ok := splitSampleKey(k)
		if !ok {
			continue
		}
		if _, ok := whole[string(id)]; !ok {
			pieces[string(id)] = samplePrefix
			continue
		}
		if !bytes.Equal(id, cur) {
			if err := flush(); err != nil {
				return dropped, n, err
			}
			cur = bytes.Clone(id)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil || asm.add(seq, part, v) != nil {
			broken = true
			continue
		}
		chunks = append(chunks, chunk{k, v})
	}
	return dropped, n, flush()
}
