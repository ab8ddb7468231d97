package store

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// gatedCommits replaces a store's committer by one that reports the ids of
// each group it takes and commits it (for real) only when released.
type gatedCommits struct {
	groups  chan []string
	release chan struct{} // one receive per group; close to let all through
}

func gate(t *testing.T, s *Store, maxEntries, maxBytes int64) *gatedCommits {
	t.Helper()
	s.creates.close()
	g := &gatedCommits{groups: make(chan []string, 1000), release: make(chan struct{})}
	s.creates = newCommitter(maxEntries, maxBytes, func(group []*pendingCreate) {
		var ids []string
		for _, p := range group {
			ids = append(ids, p.sub.ID)
		}
		g.groups <- ids
		<-g.release
		s.commitGroup(group)
	})
	return g
}

// waitQueued waits until n creates wait in the committer's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.creates.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d creates queued, want %d", len(s.creates.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// createAll runs one Create per subject concurrently and returns their
// errors in order once all have returned.
func createAll(s *Store, subs []Subject) (errs []error, wait func() []error) {
	errs = make([]error, len(subs))
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Go(func() { _, errs[i] = s.Create(sub) })
	}
	return errs, func() []error { wg.Wait(); return errs }
}

// A group decides each subject alone: an id already stored and the second
// create of an id in the group fail with the error Create gives alone, the
// others are written, and nothing of the losers is.
func TestGroupDecidesEachSubject(t *testing.T) {
	s := open(t)
	mustCreate(t, s, subject("old", "olds"))
	_, errAlone := s.Create(subject("old", "olds"))
	if !errors.Is(errAlone, ErrExists) {
		t.Fatalf("create of a stored id alone: %v", errAlone)
	}

	var group []*pendingCreate
	for _, sub := range []Subject{
		subject("a", "first"),
		subject("b", "shared"),
		subject("a", "second"), // same id, other watchlist
		subject("old", "shared"),
		subject("c", "shared"),
	} {
		p, err := newCreate(sub)
		if err != nil {
			t.Fatal(err)
		}
		group = append(group, p)
	}
	s.commitGroup(group)
	var errs []error
	for _, p := range group {
		errs = append(errs, <-p.done)
	}
	if errs[0] != nil || errs[1] != nil || errs[4] != nil {
		t.Fatalf("errors %v", errs)
	}
	if !errors.Is(errs[2], ErrExists) || errs[2].Error() != strings.Replace(errAlone.Error(), "old", "a", 1) {
		t.Fatalf("duplicate in the group: %v", errs[2])
	}
	if !errors.Is(errs[3], ErrExists) || errs[3].Error() != errAlone.Error() {
		t.Fatalf("stored id in the group: %v, alone %v", errs[3], errAlone)
	}
	for i, id := range []string{"a", "b", "c"} {
		got, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if want := *group[[]int{0, 1, 4}[i]].sub; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", id, got, want)
		}
	}
	lists, err := s.Watchlists()
	if err != nil {
		t.Fatal(err)
	}
	want := []WatchlistInfo{{"first", 1}, {"olds", 1}, {"shared", 2}}
	if !reflect.DeepEqual(lists, want) {
		t.Fatalf("watchlists %v, want %v", lists, want)
	}
}

// Creates that arrive while a group commits form the next group, bounded
// by count, and duplicates among them are decided in the group.
func TestCommitterGathersWhileBusy(t *testing.T) {
	s := open(t)
	g := gate(t, s, s.db.MaxBatchCount(), s.db.MaxBatchSize())
	_, waitFirst := createAll(s, []Subject{subject("first")})
	if ids := <-g.groups; !slices.Equal(ids, []string{"first"}) {
		t.Fatalf("first group %v", ids)
	}
	// The committer is busy with "first": these queue.
	var subs []Subject
	for i := range 50 {
		subs = append(subs, subject(fmt.Sprintf("s%02d", i), "l"))
	}
	subs = append(subs, subject("dup", "w1"), subject("dup", "w2"), subject("first"))
	_, wait := createAll(s, subs)
	waitQueued(t, s, len(subs))
	close(g.release)
	if errs := waitFirst(); errs[0] != nil {
		t.Fatal(errs[0])
	}
	errs := wait()
	second := <-g.groups
	if len(second) != len(subs) {
		t.Fatalf("second group has %d creates, want all %d queued: %v", len(second), len(subs), second)
	}
	for i, err := range errs[:50] {
		if err != nil {
			t.Fatalf("%s: %v", subs[i].ID, err)
		}
	}
	if (errs[50] == nil) == (errs[51] == nil) || !errors.Is(cmpErr(errs[50], errs[51]), ErrExists) {
		t.Fatalf("two creates of one id in a group: %v, %v", errs[50], errs[51])
	}
	if !errors.Is(errs[52], ErrExists) {
		t.Fatalf("create of an id committed in the previous group: %v", errs[52])
	}
	lists, _ := s.Watchlists()
	if len(lists) != 2 || lists[0] != (WatchlistInfo{"l", 50}) || lists[1].Subjects != 1 {
		t.Fatalf("watchlists %v", lists)
	}
	if n := count(t, s); n != 52 {
		t.Fatalf("count %d", n)
	}
}

// cmpErr returns whichever of two errors is set.
func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// A group stays under its byte bound; what does not fit goes first into
// the next, so creates keep their order.
func TestCommitterBounds(t *testing.T) {
	s := open(t)
	p, err := newCreate(subject("s00", "l"))
	if err != nil {
		t.Fatal(err)
	}
	// The committer halves the limits it is given: room for 3 subjects.
	g := gate(t, s, 2*1000, 2*(3*p.bytes+p.bytes/2))
	_, waitFirst := createAll(s, []Subject{subject("first")})
	<-g.groups
	// Queue them one by one so their order is known.
	var waits []func() []error
	for i := range 10 {
		_, w := createAll(s, []Subject{subject(fmt.Sprintf("s%02d", i), "l")})
		waits = append(waits, w)
		waitQueued(t, s, i+1)
	}
	close(g.release)
	waitFirst()
	for _, w := range waits {
		if err := w()[0]; err != nil {
			t.Fatal(err)
		}
	}
	var got [][]string
	for range 4 {
		got = append(got, <-g.groups)
	}
	want := [][]string{{"s00", "s01", "s02"}, {"s03", "s04", "s05"}, {"s06", "s07", "s08"}, {"s09"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	if n := count(t, s); n != 11 {
		t.Fatalf("count %d", n)
	}
}

// Close commits and answers the creates already queued, refuses later ones,
// and what it acknowledged is there after reopening.
func TestCloseAnswersPending(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	g := gate(t, s, s.db.MaxBatchCount(), s.db.MaxBatchSize())
	subs := []Subject{subject("first")}
	_, waitFirst := createAll(s, subs)
	<-g.groups
	var queued []Subject
	for i := range 20 {
		queued = append(queued, subject(fmt.Sprintf("q%02d", i), "l"))
	}
	_, wait := createAll(s, queued)
	waitQueued(t, s, len(queued))
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	// Close stops taking creates, then waits for the queue to drain.
	deadline := time.Now().Add(30 * time.Second)
	for !isClosed(s.creates) {
		if time.Now().After(deadline) {
			t.Fatal("Close did not stop taking creates")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Create(subject("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("create while closing: %v", err)
	}
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := waitFirst()[0]; err != nil {
		t.Fatal(err)
	}
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("%s: %v", queued[i].ID, err)
		}
	}
	if _, err := s.Create(subject("after")); !errors.Is(err, ErrClosed) || err.Error() != `store: creating "after": store: closed` {
		t.Fatalf("create after close: %v", err)
	}

	s = openAt(t, dir)
	for _, sub := range append(subs[:1], queued...) {
		if _, err := s.Get(sub.ID); err != nil {
			t.Fatalf("acknowledged %s lost: %v", sub.ID, err)
		}
	}
	for _, id := range []string{"late", "after"} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("refused create %s stored: %v", id, err)
		}
	}
}

func isClosed(c *committer) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// Every Create acknowledged while Close runs concurrently is there after
// reopening, and every refused one is not.
func TestConcurrentCreatesAndClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 64
	var mu sync.Mutex
	var acked, refused []string
	var wg sync.WaitGroup
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%02d-%05d", w, i)
				_, err := s.Create(subject(id, fmt.Sprint("l", w%3)))
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, id)
				case errors.Is(err, ErrClosed):
					refused = append(refused, id)
				default:
					t.Errorf("%s: %v", id, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				if i == 2 {
					started <- struct{}{}
				}
			}
		})
	}
	for range writers {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(refused) != writers {
		t.Fatalf("%d refused, want one per writer", len(refused))
	}
	s = openAt(t, dir)
	for _, id := range acked {
		if _, err := s.Get(id); err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
	}
	for _, id := range refused {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("refused %s: %v", id, err)
		}
	}
	if n := count(t, s); n != len(acked) {
		t.Fatalf("count %d, acknowledged %d", n, len(acked))
	}
	checkConsistent(t, s)
}

// Creates and deletes of the same few ids from many goroutines are
// serialisable: per id, successful creates and deletes alternate (so they
// differ by at most one, and by one exactly when the subject is there).
func TestCreateDeleteSameIDs(t *testing.T) {
	s := open(t)
	ids := []string{"x0", "x1", "x2", "x3"}
	var mu sync.Mutex
	created, deleted := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 150 {
				id := ids[r.IntN(len(ids))]
				if r.IntN(2) == 0 {
					_, err := s.Create(subject(id, "l", fmt.Sprint("g", g)))
					if err != nil && !errors.Is(err, ErrExists) {
						t.Error(err)
						return
					}
					if err == nil {
						mu.Lock()
						created[id]++
						mu.Unlock()
					}
				} else {
					_, err := s.Delete(id)
					if err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
					if err == nil {
						mu.Lock()
						deleted[id]++
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	present := 0
	for _, id := range ids {
		_, err := s.Get(id)
		there := err == nil
		if d := created[id] - deleted[id]; d != 0 && d != 1 || (d == 1) != there {
			t.Fatalf("%s: %d creates, %d deletes, present %v", id, created[id], deleted[id], there)
		}
		if there {
			present++
		}
		if created[id] == 0 {
			t.Logf("%s never created", id)
		}
	}
	lists, _ := s.Watchlists()
	members := 0
	for _, l := range lists {
		if l.Name == "l" {
			members = l.Subjects
		}
	}
	if members != present {
		t.Fatalf("watchlists %v with %d subjects", lists, present)
	}
	checkConsistent(t, s)
}

// checkConsistent checks that no subject is half there: every record has
// its templates (Each checks), every template and watchlist entry belongs
// to a record.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	tpls, lists := 0, map[string]int{}
	if err := s.Each(func(sub Subject) error {
		tpls += len(sub.Templates)
		for _, l := range sub.Watchlists {
			lists[l]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Watchlists()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range got {
		if lists[l.Name] != l.Subjects {
			t.Fatalf("watchlist %s: %d entries, %d members", l.Name, l.Subjects, lists[l.Name])
		}
		delete(lists, l.Name)
	}
	if len(lists) > 0 {
		t.Fatalf("members without watchlist entries: %v", lists)
	}
	var stored int
	if err := s.db.View(func(txn *badger.Txn) error {
		var err error
		stored, err = countPrefix(txn, []byte(templatePrefix))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if stored != tpls {
		t.Fatalf("%d template keys, %d templates of subjects", stored, tpls)
	}
}

// crashSubject is the subject the crash helper creates as id n: its
// content follows from n, so the test can check it after the crash.
func crashSubject(fingers []templates.Template, n int) Subject {
	sub := subject(fmt.Sprintf("c%06d", n), fmt.Sprint("l", n%3), fmt.Sprint("m", n%5))
	sub.Metadata = map[string]string{"n": fmt.Sprint(n)}
	for i := range n % 3 {
		sub.Templates = append(sub.Templates, tpl(n*7+i))
	}
	if n%4 == 0 {
		sub.Templates = append(sub.Templates, fingers[n%len(fingers)])
	}
	return sub
}

// crashFingers are the finger templates crashSubject uses.
func crashFingers(t testing.TB) []templates.Template {
	var out []templates.Template
	for pos := minutiae.RightThumb; pos <= minutiae.LeftLittle; pos++ {
		out = append(out, fingerTpl(t, pos))
	}
	return out
}

const crashDirEnv = "BORDERMATCH_STORE_CRASH_DIR"

// TestCrashHelper is the process TestAcknowledgedSurviveKill kills: it
// creates subjects from 32 goroutines and prints the number of each as
// soon as its Create returns, until it is killed. Run alone it does nothing.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	fingers := crashFingers(t)
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				mu.Lock()
				n := next
				next++
				mu.Unlock()
				if _, err := s.Create(crashSubject(fingers, n)); err != nil {
					fmt.Println("create:", err)
					os.Exit(2)
				}
				// One write(2) per line: what the parent reads was
				// acknowledged, even if this process dies the next instant.
				fmt.Printf("%d\n", n)
			}
		})
	}
	wg.Wait()
}

// Every Create acknowledged before the process is killed (SIGKILL, no
// Close) is there, whole, when the store is opened again, and no subject is
// half written. A process kill leaves the page cache to the kernel, so this
// checks what Badger replays, not the fsync itself.
func TestAcknowledgedSurviveKill(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscan(sc.Text(), &n); err != nil {
			cmd.Process.Kill()
			t.Fatalf("helper: %s", sc.Text())
		}
		acked = append(acked, n)
		if len(acked) == 1500 && !killed {
			// Mid-stream: other creates are in flight. Lines already
			// in the pipe are read below; they were acknowledged too.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("helper ended before the kill: %v", err)
	}
	t.Logf("%d creates acknowledged before the kill", len(acked))

	s := openAt(t, dir)
	fingers := crashFingers(t)
	for _, n := range acked {
		want := crashSubject(fingers, n)
		got, err := s.Get(want.ID)
		if err != nil {
			t.Fatalf("acknowledged %s: %v", want.ID, err)
		}
		got.Created, got.Updated = time.Time{}, time.Time{}
		want, _, _ = prepare(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s after the kill:\n got %+v\nwant %+v", want.ID, got, want)
		}
	}
	if n := count(t, s); n < len(acked) {
		t.Fatalf("%d subjects, %d acknowledged", n, len(acked))
	}
	checkConsistent(t, s)
}
