package audit

// The archive and retention.
//
// With a retention period, a retention pass (at Open, then every
// RetentionInterval) moves the records older than the period out of the
// gallery into one append-only file, <ArchiveDir>/archive.jsonl:
//
//	one line per record, in sequence order from record 1: the record's
//	stored bytes exactly as they were in the gallery (so their SHA-256, and
//	every link, are unchanged), then '\n'
//
// A pass takes the records older than the cutoff from the front of the
// gallery's chain (stopping at the first younger one, so the archive and
// the gallery always split the chain at one sequence number), checks each
// links to the one before, appends them to the file, fsyncs it (and its
// directory when it was created), and only then deletes them from the
// gallery. A crash after the append and before the delete leaves the
// records in both: Verify accepts that (the gallery's copies must be the
// same bytes) and the next pass skips, by sequence number, what the archive
// already holds and deletes it. A crash during the append can leave the
// file ending in part of a line: those records were never deleted from the
// gallery; Verify ignores the incomplete line and the next pass cuts it off
// before appending.
//
// The gallery's first record then links to the archive's last: Verify
// walks the archive and the gallery as one chain, and a gallery whose
// records start past 1 with no archive holding the rest is a gap. The
// archive file holds no biometric data, only what the records hold; it is
// a plain file, so copy it elsewhere (write-once storage) as it grows:
// VerifyArchiveFile, and `watchlist audit verify --archive FILE`, check a
// copy on its own and against the server's chain.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ArchiveFile is the archive's name in Options.ArchiveDir.
const ArchiveFile = "archive.jsonl"

// maxArchiveLine bounds one archived record (records are a few hundred
// bytes; a hundred hits make a few KiB).
const maxArchiveLine = 1 << 20

// Result is what Verify found.
type Result struct {
	OK bool
	// Records is the number of records in the chain, archive and gallery
	// (the chain runs from 1 without gaps, so also the last one's number).
	Records uint64
	// HeadSeq and HeadHash: the last record's sequence number and hash.
	HeadSeq  uint64
	HeadHash string
	// Archive is the archive file read ("" when there is none), Archived
	// the number of records in it, ArchiveFirstSeq and ArchiveLastSeq the
	// first and last, ArchiveLastHash the last one's hash. ArchiveTorn: the
	// file ends in an incomplete line (an export cut short by a crash,
	// whose records are still in the gallery); it is ignored.
	Archive                         string
	Archived                        uint64
	ArchiveFirstSeq, ArchiveLastSeq uint64
	ArchiveLastHash                 string
	ArchiveTorn                     bool
	// LiveFirstSeq is the first record still in the gallery (0: none).
	LiveFirstSeq uint64
	// LinkSeq and LinkHash: the hash of the record VerifyLink was asked
	// about ("" when the chain has no such record).
	LinkSeq  uint64
	LinkHash string
	// BadSeq is the first record found bad (0: the chain head itself);
	// Problem says what is wrong, naming the archive file when the record
	// is in it. Set when !OK.
	BadSeq  uint64
	Problem string
}

// checker walks a chain record by record.
type checker struct {
	res      *Result
	want     uint64 // next sequence number
	prev     string // hash of record want-1 (zeroHash before record 1)
	prevFile string // where record want-1 is: "" the gallery, or the archive file
	failed   bool
}

func newChecker(res *Result) *checker { return &checker{res: res, want: 1, prev: zeroHash} }

// bad records the first problem: at names the archive file ("" for the
// gallery).
func (c *checker) bad(seq uint64, at, format string, a ...any) bool {
	if !c.failed {
		c.failed = true
		c.res.OK, c.res.BadSeq, c.res.Problem = false, seq, fmt.Sprintf(format, a...)
		if at != "" {
			c.res.Problem = "archive " + at + ": " + c.res.Problem
		}
	}
	return false
}

// next checks the record stored as seq, in file at ("" the gallery), as the
// chain's next. It returns false (and sets the result) when it is bad.
func (c *checker) next(seq uint64, b []byte, at string) bool {
	if seq != c.want {
		if seq < c.want {
			return c.bad(seq, at, "record %d is there again after record %d (moved or repeated)", seq, c.want-1)
		}
		if c.prevFile != "" && at == "" {
			return c.bad(c.want, at, "records %d to %d are missing: the archive %s ends at record %d and the gallery's records start at %d",
				c.want, seq-1, c.prevFile, c.want-1, seq)
		}
		if c.want == 1 && at == "" {
			return c.bad(1, at, "record 1 is missing (the gallery's records start at %d, and there is no archive holding the ones before)", seq)
		}
		return c.bad(c.want, at, "record %d is missing (the next record is %d)", c.want, seq)
	}
	r, err := decode(b)
	if err != nil {
		return c.bad(seq, at, "record %d is %v", seq, err)
	}
	if r.Seq != seq {
		return c.bad(seq, at, "record stored as %d says it is %d (moved)", seq, r.Seq)
	}
	if r.Prev != c.prev {
		if seq == 1 {
			return c.bad(1, at, "record 1 was altered (its link is not the zero hash)")
		}
		if c.prevFile != at {
			return c.bad(seq-1, c.prevFile, "record %d was altered: its hash does not match the link in record %d (in %s)",
				seq-1, seq, where(at))
		}
		return c.bad(seq-1, at, "record %d was altered: its hash does not match the link in record %d", seq-1, seq)
	}
	if seq == c.res.LinkSeq {
		c.res.LinkHash = r.Hash
	}
	c.prev, c.prevFile = r.Hash, at
	c.want++
	return true
}

func where(file string) string {
	if file == "" {
		return "the gallery"
	}
	return "the archive " + file
}

// archiveInfo is what reading an archive found.
type archiveInfo struct {
	records, first, last uint64
	lastHash             string
	size                 int64 // bytes in complete lines
	torn                 bool
}

// readArchive feeds the complete lines of an archive to c, as the chain
// from record 1, and returns what it holds; it stops at the first bad
// record (c.failed). name is the file in problems.
func readArchive(r io.Reader, name string, c *checker) (archiveInfo, error) {
	var info archiveInfo
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > maxArchiveLine {
				c.bad(c.want, name, "the line of record %d, at byte %d, is over %d bytes", c.want, info.size, maxArchiveLine)
				return info, nil
			}
			continue
		}
		if err == io.EOF {
			info.torn = len(line) > 0
			return info, nil
		}
		if err != nil {
			return info, fmt.Errorf("audit: reading the archive %s: %w", name, err)
		}
		rec := line[:len(line)-1]
		var seq struct {
			Seq *uint64 `json:"seq"`
		}
		s := c.want // a record that does not say is checked as the next
		if decodeSeq(rec, &seq) && seq.Seq != nil {
			s = *seq.Seq
		}
		if !c.next(s, rec, name) {
			return info, nil
		}
		if info.records == 0 {
			info.first = s
		}
		info.records++
		info.last, info.lastHash = s, c.prev
		info.size += int64(len(line))
		line = line[:0]
	}
}

// decodeSeq reads just the seq field of a line (the archive has no key to
// say which record a line claims to be).
func decodeSeq(b []byte, v any) bool {
	return json.Unmarshal(b, v) == nil
}

// VerifyArchiveFile checks a copy of an archive on its own: records from 1
// without gaps, each linked to the one before. Result's Archive fields say
// what it holds, HeadSeq and HeadHash its last record (which the gallery's
// chain, or a later copy, must continue: compare them with VerifyLink's
// answer for that record).
func VerifyArchiveFile(path string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	res := Result{Archive: path}
	c := newChecker(&res)
	info, err := readArchive(f, path, c)
	if err != nil {
		return Result{}, err
	}
	res.setArchive(info)
	if !c.failed {
		res.OK = true
		res.Records, res.HeadSeq, res.HeadHash = info.last, info.last, info.lastHash
	}
	return res, nil
}

func (res *Result) setArchive(info archiveInfo) {
	res.Archived, res.ArchiveFirstSeq, res.ArchiveLastSeq = info.records, info.first, info.last
	res.ArchiveLastHash, res.ArchiveTorn = info.lastHash, info.torn
}

// Verify checks the whole chain: the archive, when there is one, then the
// records in the gallery, as one chain (sequence numbers from 1 without
// gaps, each record's link to the one before), and the head against the
// last record.
func (l *Log) Verify() (Result, error) { return l.VerifyLink(0) }

// VerifyLink is Verify that also reports the hash of record seq (Result's
// LinkHash), wherever it is, to check a copy of the archive that ends
// there against the chain.
func (l *Log) VerifyLink(seq uint64) (Result, error) {
	// A retention pass moves records from the gallery to the archive: not
	// while the two are read.
	l.rmu.Lock()
	defer l.rmu.Unlock()
	res := Result{LinkSeq: seq}
	c := newChecker(&res)
	if l.opt.ArchiveDir != "" {
		path := filepath.Join(l.opt.ArchiveDir, ArchiveFile)
		f, err := os.Open(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return Result{}, fmt.Errorf("audit: verifying: %w", err)
		default:
			info, err := readArchive(f, path, c)
			f.Close()
			if err != nil {
				return Result{}, fmt.Errorf("audit: verifying: %w", err)
			}
			res.Archive = path
			res.setArchive(info)
		}
	}
	// Records in both the archive and the gallery (an export whose delete
	// a crash cut short): the gallery's copies must link among themselves
	// and the last of them be the archive's, hash for hash, so all are
	// the same bytes.
	overlapEnd := c.want - 1
	var overlapPrev string
	var overlapLast uint64
	headSeq, headHash, err := l.trail.Scan(0, func(seq uint64, b []byte) error {
		if c.failed {
			return errStop
		}
		if res.LiveFirstSeq == 0 {
			res.LiveFirstSeq = seq
		}
		if seq <= overlapEnd && !c.failed && res.Archive != "" {
			r, err := decode(b)
			switch {
			case overlapLast != 0 && seq != overlapLast+1:
				c.bad(overlapLast+1, "", "record %d is missing (the next record is %d)", overlapLast+1, seq)
			case err != nil:
				c.bad(seq, "", "record %d is %v", seq, err)
			case r.Seq != seq:
				c.bad(seq, "", "record stored as %d says it is %d (moved)", seq, r.Seq)
			case overlapPrev != "" && r.Prev != overlapPrev:
				c.bad(seq-1, "", "record %d was altered: its hash does not match the link in record %d", seq-1, seq)
			case seq == overlapEnd && r.Hash != res.ArchiveLastHash:
				c.bad(seq, "", "record %d differs from its copy in the archive %s", seq, res.Archive)
			}
			overlapPrev, overlapLast = r.Hash, seq
			return nil
		}
		if overlapLast != 0 && overlapLast < overlapEnd {
			c.bad(overlapLast+1, "", "record %d is missing from the gallery, which still holds archived records before it", overlapLast+1)
			return errStop
		}
		overlapLast = 0
		c.next(seq, b, "")
		return nil
	})
	if overlapLast != 0 && overlapLast < overlapEnd {
		c.bad(overlapLast+1, "", "record %d is missing from the gallery, which still holds archived records before it", overlapLast+1)
	}
	var mk malformedKey
	switch {
	case errors.Is(err, errStop):
	case errors.As(err, &mk):
		c.bad(c.want, "", "malformed key %q where record %d should be", mk.MalformedKey(), c.want)
	case err != nil:
		return Result{}, fmt.Errorf("audit: verifying: %w", err)
	}
	res.HeadSeq, res.HeadHash = headSeq, hex.EncodeToString(headHash[:])
	if c.failed {
		return res, nil
	}
	last := c.want - 1
	res.Records = last
	switch {
	case last == 0 && headSeq == 0:
	case headSeq == 0:
		c.bad(0, "", "the chain head is missing but there are %d records", last)
	case headSeq > last:
		c.bad(last+1, "", "record %d is missing: the chain head is record %d but the last record is %d", last+1, headSeq, last)
	case headSeq < last && c.prevFile != "":
		c.bad(headSeq+1, c.prevFile, "record %d is past the chain head (%d)", headSeq+1, headSeq)
	case headSeq < last:
		c.bad(headSeq+1, "", "record %d follows the chain head (%d): appended outside the audit log", headSeq+1, headSeq)
	case res.HeadHash != c.prev:
		c.bad(last, c.prevFile, "record %d was altered: its hash does not match the chain head", last)
	}
	res.OK = !c.failed
	return res, nil
}

// RetainStats says what a retention pass did.
type RetainStats struct {
	// Archived: records appended to the archive; Dropped: records deleted
	// from the gallery (more than Archived after a pass a crash cut short).
	Archived, Dropped int
	// Through: the last record in the archive.
	Through uint64
}

// archiveCache is the archive's end as the last pass left it, so a pass
// does not read the whole file again: valid while the file has that size
// and modification time. (Verify reads it all, whatever the cache.)
type archiveCache struct {
	ok       bool
	size     int64
	mtime    time.Time
	last     uint64
	lastHash string
}

func (l *Log) retainLoop() {
	defer close(l.stopped)
	t := time.NewTicker(l.opt.RetentionInterval)
	defer t.Stop()
	for {
		st, err := l.Retain()
		switch {
		case err != nil:
			l.opt.Logger.Error().Err(err).Msg("audit retention pass failed; records stay in the gallery (run watchlist audit verify)")
		case st.Archived > 0 || st.Dropped > 0:
			l.opt.Logger.Info().Int("archived", st.Archived).Int("dropped", st.Dropped).Uint64("through", st.Through).
				Str("archive", filepath.Join(l.opt.ArchiveDir, ArchiveFile)).Msg("audit records moved to the archive")
		}
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
	}
}

// Retain runs a retention pass now (see the top of this file); with no
// retention period it does nothing.
func (l *Log) Retain() (RetainStats, error) {
	var st RetainStats
	if l.opt.Retention <= 0 {
		return st, nil
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	cutoff := l.opt.now().Add(-l.opt.Retention)
	f, err := l.openArchive()
	if err != nil {
		return st, err
	}
	defer f.Close()
	path := f.Name()
	want, prev := l.arch.last+1, l.arch.lastHash
	if want == 1 {
		prev = zeroHash
	}
	w := bufio.NewWriterSize(f, 256<<10)
	// From the archive's last record: if the gallery still has it (a pass
	// cut short), it must be the same; it and those before are skipped.
	_, _, err = l.trail.Scan(want-1, func(seq uint64, b []byte) error {
		if seq < want {
			if seq == want-1 {
				if h := hashOf(b); h != prev {
					return fmt.Errorf("record %d in the gallery differs from its copy in the archive %s", seq, path)
				}
			}
			return nil
		}
		if seq != want {
			return fmt.Errorf("record %d is missing from the gallery (the next is %d)", want, seq)
		}
		r, err := decode(b)
		if err != nil {
			return fmt.Errorf("record %d is %v", seq, err)
		}
		if r.Seq != seq || r.Prev != prev {
			return fmt.Errorf("record %d does not link to record %d", seq, seq-1)
		}
		if !r.Time.Before(cutoff) {
			return errStop
		}
		if bytes.IndexByte(b, '\n') >= 0 {
			return fmt.Errorf("record %d holds a newline", seq)
		}
		w.Write(b)
		if err := w.WriteByte('\n'); err != nil {
			return fmt.Errorf("writing the archive %s: %w", path, err)
		}
		want, prev = want+1, r.Hash
		st.Archived++
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err != nil {
		// Keep what was exported before the problem: it links.
		err = fmt.Errorf("audit: retention stopped: %w (run watchlist audit verify)", err)
	}
	if ferr := w.Flush(); ferr != nil {
		l.arch.ok = false
		return st, fmt.Errorf("audit: writing the archive %s: %w", path, ferr)
	}
	if serr := f.Sync(); serr != nil {
		l.arch.ok = false
		return st, fmt.Errorf("audit: syncing the archive %s: %w", path, serr)
	}
	if st.Archived > 0 {
		fi, serr := f.Stat()
		if serr != nil {
			l.arch.ok = false
			return st, fmt.Errorf("audit: %w", serr)
		}
		l.arch = archiveCache{ok: true, size: fi.Size(), mtime: fi.ModTime(), last: want - 1, lastHash: prev}
	}
	st.Through = want - 1
	// Only what is on disk in the archive leaves the gallery.
	if st.Through > 0 {
		n, derr := l.trail.DeleteThrough(st.Through)
		st.Dropped = n
		if derr != nil && err == nil {
			err = fmt.Errorf("audit: dropping archived records: %w", derr)
		}
	}
	return st, err
}

func hashOf(b []byte) string {
	r, err := decode(b)
	if err != nil {
		return ""
	}
	return r.Hash
}

// openArchive opens the archive for appending, creating it (and its
// directory, fsynced) if need be, and makes l.arch its end: read again
// unless the file has the size the last pass left it with. An incomplete
// last line (an append a crash cut short) is cut off; a broken archive is
// an error, and nothing is appended to it.
func (l *Log) openArchive() (*os.File, error) {
	dir := l.opt.ArchiveDir
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, ArchiveFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		if f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
		l.arch = archiveCache{ok: true}
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	if l.arch.ok && fi.Size() == l.arch.size && fi.ModTime().Equal(l.arch.mtime) {
		return f, nil
	}
	var res Result
	c := newChecker(&res)
	info, err := readArchive(io.NewSectionReader(f, 0, fi.Size()), path, c)
	if err == nil && c.failed {
		err = fmt.Errorf("audit: not appending to a broken archive: %s", res.Problem)
	}
	if err == nil && info.torn {
		if err = f.Truncate(info.size); err == nil {
			err = f.Sync()
		}
		if err != nil {
			err = fmt.Errorf("audit: cutting the incomplete last line of %s: %w", path, err)
		}
	}
	if err != nil {
		f.Close()
		l.arch.ok = false
		return nil, err
	}
	if info.torn {
		if fi, err = f.Stat(); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	l.arch = archiveCache{ok: true, size: info.size, mtime: fi.ModTime(), last: info.last, lastHash: info.lastHash}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: syncing %s: %w", dir, err)
	}
	return nil
}
