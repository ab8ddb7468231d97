package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/store"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// clock is a settable now for the retention passes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time     { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)    { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func newClock(t time.Time) *clock   { return &clock{t: t} }
func archivePath(dir string) string { return filepath.Join(dir, ArchiveFile) }

// appendAt appends n records an hour apart from start.
func appendAt(t *testing.T, l *Log, start time.Time, n int) []Record {
	t.Helper()
	var out []Record
	for i := range n {
		r, err := l.Append(Record{Time: start.Add(time.Duration(i) * time.Hour), Identity: "gate-07", RPC: "/x",
			Hits: []Hit{{SubjectID: fmt.Sprintf("P%d", i)}}, Decision: "hit", Code: "OK"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// retentionLog opens a gallery and its log with a week's retention, the
// passes run by the test (Retain) besides the one at Open.
func retentionLog(t *testing.T, trail func(*store.Store) Trail) (*store.Store, *Log, *clock, string) {
	t.Helper()
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	clk := newClock(t0)
	adir := filepath.Join(t.TempDir(), "audit")
	var tr Trail = st.AuditTrail()
	if trail != nil {
		tr = trail(st)
	}
	l, err := Open(tr, Options{ArchiveDir: adir, Retention: 7 * 24 * time.Hour, now: clk.now, manual: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return st, l, clk, adir
}

func archiveLines(t *testing.T, adir string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(archivePath(adir))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func liveSeqs(t *testing.T, st *store.Store) []uint64 {
	t.Helper()
	var seqs []uint64
	if _, _, err := st.AuditTrail().Scan(0, func(seq uint64, _ []byte) error { seqs = append(seqs, seq); return nil }); err != nil {
		t.Fatal(err)
	}
	return seqs
}

func verifyChain(t *testing.T, l *Log, records, archived uint64) Result {
	t.Helper()
	res, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Records != records || res.HeadSeq != records || res.Archived != archived {
		t.Fatalf("verify: %+v, want ok with %d records, %d archived", res, records, archived)
	}
	return res
}

// TestRetentionExportsThenDrops: records older than the retention period
// go to the archive, byte for byte, and leave the gallery; the two verify as
// one chain, and the chain goes on.
func TestRetentionExportsThenDrops(t *testing.T) {
	st, l, clk, adir := retentionLog(t, nil)
	recs := appendAt(t, l, t0, 20) // t0 … t0+19h
	clk.set(t0.Add(7*24*time.Hour + 10*time.Hour + time.Minute))
	stats, err := l.Retain()
	if err != nil || stats.Archived != 11 || stats.Dropped != 11 || stats.Through != 11 {
		t.Fatalf("retain: %+v %v, want records 1-11 archived and dropped", stats, err)
	}
	lines := archiveLines(t, adir)
	if len(lines) != 11 {
		t.Fatalf("archive has %d lines, want 11", len(lines))
	}
	for i, line := range lines {
		if got := hashOf(bytes.TrimSuffix(line, []byte("\n"))); got != recs[i].Hash {
			t.Fatalf("archived record %d hashes to %s, stored %s", i+1, got, recs[i].Hash)
		}
	}
	if seqs := liveSeqs(t, st); len(seqs) != 9 || seqs[0] != 12 {
		t.Fatalf("gallery holds %v, want 12-20", seqs)
	}
	res := verifyChain(t, l, 20, 11)
	if res.ArchiveFirstSeq != 1 || res.ArchiveLastSeq != 11 || res.ArchiveLastHash != recs[10].Hash ||
		res.LiveFirstSeq != 12 || res.HeadHash != recs[19].Hash || res.Archive != archivePath(adir) {
		t.Fatalf("verify: %+v", res)
	}
	if got, _, err := l.List(Filter{}, 100); err != nil || len(got) != 9 || got[0].Seq != 12 {
		t.Fatalf("List after retention: %d records, %v", len(got), err)
	}
	// The chain goes on from the head; a later pass appends to the archive.
	more := appendAt(t, l, t0.Add(20*time.Hour), 3)
	if more[0].Seq != 21 || more[0].Prev != recs[19].Hash {
		t.Fatalf("appended after retention: %+v", more[0])
	}
	clk.set(t0.Add(365 * 24 * time.Hour))
	if stats, err := l.Retain(); err != nil || stats.Archived != 12 || stats.Through != 23 {
		t.Fatalf("second retain: %+v %v", stats, err)
	}
	// Everything archived: the head alone stays in the gallery.
	if seqs := liveSeqs(t, st); len(seqs) != 0 {
		t.Fatalf("gallery still holds %v", seqs)
	}
	verifyChain(t, l, 23, 23)
	if r := appendAt(t, l, t0, 1)[0]; r.Seq != 24 || r.Prev != more[2].Hash {
		t.Fatalf("appended after archiving everything: %+v", r)
	}
	res = verifyChain(t, l, 24, 23)
	if res.LiveFirstSeq != 24 {
		t.Fatalf("live chain starts at %d", res.LiveFirstSeq)
	}
	// A copy of the archive verifies alone; the server's chain confirms its
	// end.
	copyRes, err := VerifyArchiveFile(archivePath(adir))
	if err != nil || !copyRes.OK || copyRes.HeadSeq != 23 || copyRes.Archived != 23 {
		t.Fatalf("VerifyArchiveFile: %+v %v", copyRes, err)
	}
	link, err := l.VerifyLink(23)
	if err != nil || !link.OK || link.LinkHash != copyRes.HeadHash {
		t.Fatalf("VerifyLink(23): %+v %v, want the copy's last hash %s", link, err, copyRes.HeadHash)
	}
}

// TestRetentionPasses: Open runs a pass at once and then every interval,
// until Close.
func TestRetentionPasses(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := openLog(t, st, Options{})
	appendAt(t, l, t0, 3)
	l.Close()
	adir := filepath.Join(t.TempDir(), "audit")
	l = openLog(t, st, Options{ArchiveDir: adir, Retention: time.Hour, RetentionInterval: 20 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for len(liveSeqs(t, st)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pass at Open did not archive the old records")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The periodic passes take records as they grow old.
	l.Append(Record{Time: time.Now().Add(-time.Hour + 100*time.Millisecond), RPC: "/x", Decision: "ok", Code: "OK"})
	clk := time.Now().Add(10 * time.Second)
	for len(liveSeqs(t, st)) > 0 {
		if time.Now().After(clk) {
			t.Fatal("no periodic pass archived the record")
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Close()
	verifyChain(t, l, 4, 4)
}

// TestRetentionDefaultKeepsAll: with no retention period nothing moves.
func TestRetentionDefaultKeepsAll(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	adir := filepath.Join(t.TempDir(), "audit")
	l := openLog(t, st, Options{ArchiveDir: adir})
	appendAt(t, l, t0.Add(-10*365*24*time.Hour), 5)
	if stats, err := l.Retain(); err != nil || stats != (RetainStats{}) {
		t.Fatalf("retain without a period: %+v %v", stats, err)
	}
	if _, err := os.Stat(adir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("archive directory made without retention: %v", err)
	}
	if seqs := liveSeqs(t, st); len(seqs) != 5 {
		t.Fatalf("gallery holds %v", seqs)
	}
	verifyChain(t, l, 5, 0)
	if _, err := Open(st.AuditTrail(), Options{Retention: time.Hour}); err == nil {
		t.Fatal("retention without an archive directory accepted")
	}
}

// TestRetentionArchiveTamper: an edited, removed or repeated archived
// record is found and named, with the file.
func TestRetentionArchiveTamper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(lines [][]byte) [][]byte
		bad    uint64
		want   string
	}{
		{"edit", func(ls [][]byte) [][]byte {
			ls[2] = bytes.Replace(ls[2], []byte(`"P2"`), []byte(`"P9"`), 1)
			return ls
		}, 3, "record 3 was altered"},
		{"edit the last", func(ls [][]byte) [][]byte {
			ls[5] = bytes.Replace(ls[5], []byte(`"P5"`), []byte(`"P9"`), 1)
			return ls
		}, 6, "record 6 was altered: its hash does not match the link in record 7 (in the gallery)"},
		{"remove", func(ls [][]byte) [][]byte { return append(ls[:3:3], ls[4:]...) }, 4, "record 4 is missing"},
		{"remove the last", func(ls [][]byte) [][]byte { return ls[:5] }, 6, "records 6 to 6 are missing"},
		{"repeat", func(ls [][]byte) [][]byte { return append(ls[:4:4], ls[3:]...) }, 4, "record 4 is there again"},
		{"garbage", func(ls [][]byte) [][]byte { ls[1] = []byte("{not json\n"); return ls }, 2, "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, l, clk, adir := retentionLog(t, nil)
			appendAt(t, l, t0, 10)
			clk.set(t0.Add(7*24*time.Hour + 5*time.Hour + time.Minute)) // archives 1-6
			if _, err := l.Retain(); err != nil {
				t.Fatal(err)
			}
			lines := tc.change(archiveLines(t, adir))
			if err := os.WriteFile(archivePath(adir), bytes.Join(lines, nil), 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := l.Verify()
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.BadSeq != tc.bad || !strings.Contains(res.Problem, tc.want) || !strings.Contains(res.Problem, archivePath(adir)) {
				t.Fatalf("verify: %+v, want record %d named with %q and the file", res, tc.bad, tc.want)
			}
			if tc.name != "edit the last" && tc.name != "remove the last" {
				alone, err := VerifyArchiveFile(archivePath(adir))
				if err != nil || alone.OK || alone.BadSeq != tc.bad || !strings.Contains(alone.Problem, tc.want) {
					t.Fatalf("VerifyArchiveFile: %+v %v", alone, err)
				}
			}
			// No pass appends to a broken archive.
			clk.set(t0.Add(365 * 24 * time.Hour))
			if _, err := l.Retain(); err == nil {
				t.Fatal("retention appended to a broken archive")
			}
			if again, err := l.Verify(); err != nil || again.OK || again.BadSeq != tc.bad {
				t.Fatalf("verify after a refused pass: %+v %v", again, err)
			}
		})
	}
}

// TestRetentionGapWithoutArchive: a gallery whose records start past 1 with
// no archive is missing records.
func TestRetentionGapWithoutArchive(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := openLog(t, st, Options{ArchiveDir: filepath.Join(t.TempDir(), "audit")})
	appendAt(t, l, t0, 6)
	if _, err := st.AuditTrail().DeleteThrough(3); err != nil {
		t.Fatal(err)
	}
	res, err := l.Verify()
	if err != nil || res.OK || res.BadSeq != 1 || !strings.Contains(res.Problem, "no archive") {
		t.Fatalf("verify: %+v %v, want record 1 missing with no archive", res, err)
	}
}

// failingDelete is a trail whose deletes fail while fail is set: a crash
// between the export and the delete.
type failingDelete struct {
	Trail
	fail bool
}

func (f *failingDelete) DeleteThrough(seq uint64) (int, error) {
	if f.fail {
		return 0, errors.New("simulated crash")
	}
	return f.Trail.DeleteThrough(seq)
}

// TestRetentionCrashBetweenExportAndDelete: records in both the archive and
// the gallery verify; the next pass drops them without archiving them again.
func TestRetentionCrashBetweenExportAndDelete(t *testing.T) {
	var fd *failingDelete
	st, l, clk, adir := retentionLog(t, func(st *store.Store) Trail {
		fd = &failingDelete{Trail: st.AuditTrail()}
		return fd
	})
	appendAt(t, l, t0, 10)
	fd.fail = true
	clk.set(t0.Add(7*24*time.Hour + 5*time.Hour + time.Minute))
	if _, err := l.Retain(); err == nil {
		t.Fatal("retain with a failing delete succeeded")
	}
	if n := len(archiveLines(t, adir)); n != 6 {
		t.Fatalf("archive has %d lines, want 6", n)
	}
	if seqs := liveSeqs(t, st); len(seqs) != 10 {
		t.Fatalf("gallery holds %v, want all 10", seqs)
	}
	res := verifyChain(t, l, 10, 6)
	if res.LiveFirstSeq != 1 {
		t.Fatalf("live first %d", res.LiveFirstSeq)
	}
	// The next pass (the same cutoff, from a fresh log: a restart) exports
	// nothing again and drops what the archive holds.
	fd.fail = false
	l.Close()
	l2, err := Open(fd, Options{ArchiveDir: adir, Retention: 7 * 24 * time.Hour, now: clk.now, manual: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	stats, err := l2.Retain()
	if err != nil || stats.Archived != 0 || stats.Dropped != 6 || stats.Through != 6 {
		t.Fatalf("retain after the crash: %+v %v", stats, err)
	}
	if seqs := liveSeqs(t, st); len(seqs) != 4 || seqs[0] != 7 {
		t.Fatalf("gallery holds %v after the re-run, want 7-10", seqs)
	}
	if n := len(archiveLines(t, adir)); n != 6 {
		t.Fatalf("archive has %d lines after the re-run, want 6", n)
	}
	verifyChain(t, l2, 10, 6)
}

// TestRetentionTornArchive: an append cut short leaves part of a line; it
// is ignored by Verify and cut off by the next pass.
func TestRetentionTornArchive(t *testing.T) {
	st, l, clk, adir := retentionLog(t, nil)
	appendAt(t, l, t0, 10)
	clk.set(t0.Add(7*24*time.Hour + 3*time.Hour + time.Minute)) // 1-4
	if _, err := l.Retain(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(archivePath(adir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":5,"prev":"ab`)
	f.Close()
	res := verifyChain(t, l, 10, 4)
	if !res.ArchiveTorn {
		t.Fatalf("torn archive not reported: %+v", res)
	}
	clk.set(t0.Add(7*24*time.Hour + 7*time.Hour + time.Minute)) // 5-8
	if stats, err := l.Retain(); err != nil || stats.Archived != 4 {
		t.Fatalf("retain after a torn append: %+v %v", stats, err)
	}
	if n := len(archiveLines(t, adir)); n != 8 {
		t.Fatalf("archive has %d lines, want 8", n)
	}
	res = verifyChain(t, l, 10, 8)
	if res.ArchiveTorn || len(liveSeqs(t, st)) != 2 {
		t.Fatalf("after the pass: %+v", res)
	}
}

// TestRetentionConcurrentAppends: appends during retention passes lose
// nothing: every record is in the archive or the gallery, once, in one
// chain.
func TestRetentionConcurrentAppends(t *testing.T) {
	st, l, clk, adir := retentionLog(t, nil)
	clk.set(time.Now().Add(30 * 24 * time.Hour)) // every record is old enough
	const workers, each = 6, 60
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.Append(Record{Identity: fmt.Sprintf("w%d", w), RPC: "/x", Decision: "ok", Code: "OK", Detail: fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	passes := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				passes <- n
				return
			default:
			}
			if _, err := l.Retain(); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-passes; n < 2 {
		t.Logf("only %d retention passes ran during the appends", n)
	}
	const total = workers * each
	res := verifyChain(t, l, total, uint64(len(archiveLines(t, adir))))
	if res.Archived+uint64(len(liveSeqs(t, st))) != total {
		t.Fatalf("%d archived + %d in the gallery, want %d", res.Archived, len(liveSeqs(t, st)), total)
	}
	if _, err := l.Retain(); err != nil {
		t.Fatal(err)
	}
	verifyChain(t, l, total, total)
}

// FuzzArchive: the archive reader takes any bytes without panicking, and
// what it accepts is a chain from record 1.
func FuzzArchive(f *testing.F) {
	st := openStore(f, f.TempDir())
	l, err := Open(st.AuditTrail(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	var arch []byte
	for i := range 3 {
		s := 0.5
		l.Append(Record{Identity: "gate", RPC: "/x", Hits: []Hit{{SubjectID: fmt.Sprint(i), Score: &s}}, Decision: "hit", Code: "OK"})
	}
	st.AuditTrail().Scan(0, func(_ uint64, b []byte) error { arch = append(append(arch, b...), '\n'); return nil })
	l.Close()
	st.Close()
	f.Add(arch)
	f.Add(arch[:len(arch)-7])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"prev":"` + zeroHash + `","time":"2026-01-01T00:00:00Z","identity":"","auth":"","rpc":"","decision":"","code":""}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var res Result
		c := newChecker(&res)
		info, err := readArchive(bytes.NewReader(b), "fuzz", c)
		if err != nil {
			t.Fatalf("reading from memory failed: %v", err)
		}
		if info.size > int64(len(b)) {
			t.Fatalf("size %d of %d bytes", info.size, len(b))
		}
		if c.failed {
			if !strings.HasPrefix(res.Problem, "archive fuzz: ") {
				t.Fatalf("problem does not name the file: %q", res.Problem)
			}
			return
		}
		if info.records != info.last || (info.records > 0 && info.first != 1) {
			t.Fatalf("accepted %+v", info)
		}
		if info.torn != (info.size < int64(len(b))) {
			t.Fatalf("torn %v with %d of %d bytes in lines", info.torn, info.size, len(b))
		}
		if info.records > 0 && b[info.size-1] != '\n' {
			t.Fatalf("lines end at byte %d, not a newline", info.size)
		}
	})
}

// TestRetentionOverlapTamper: after a crash between export and delete, the
// gallery's copies of archived records must still be the archived bytes.
func TestRetentionOverlapTamper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(txn *badger.Txn) error
		bad    uint64
		want   string
	}{
		{"edit the last copy", func(txn *badger.Txn) error {
			return txn.Set(recordKey(6), bytes.Replace(get(txn, 6), []byte(`"P5"`), []byte(`"P9"`), 1))
		}, 6, "record 6 differs from its copy in the archive"},
		{"edit an earlier copy", func(txn *badger.Txn) error {
			return txn.Set(recordKey(3), bytes.Replace(get(txn, 3), []byte(`"P2"`), []byte(`"P9"`), 1))
		}, 3, "record 3 was altered"},
		{"gap in the copies", func(txn *badger.Txn) error { return txn.Delete(recordKey(5)) }, 5, "record 5 is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fd *failingDelete
			st, l, clk, _ := retentionLog(t, func(st *store.Store) Trail {
				fd = &failingDelete{Trail: st.AuditTrail(), fail: true}
				return fd
			})
			appendAt(t, l, t0, 10)
			clk.set(t0.Add(7*24*time.Hour + 5*time.Hour + time.Minute)) // 1-6 exported, not dropped
			l.Retain()
			if err := st.DB().Update(tc.change); err != nil {
				t.Fatal(err)
			}
			res, err := l.Verify()
			if err != nil || res.OK || res.BadSeq != tc.bad || !strings.Contains(res.Problem, tc.want) {
				t.Fatalf("verify: %+v %v, want record %d named with %q", res, err, tc.bad, tc.want)
			}
		})
	}
}
