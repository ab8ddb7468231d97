package store

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// BenchmarkCreate measures durable (fsynced) creates of subjects with one
// 128-d template and one watchlist.
func BenchmarkCreate(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		s := open(b)
		i := 0
		for b.Loop() {
			if _, err := s.Create(subject(fmt.Sprintf("seq%09d", i), "wanted")); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
	// Concurrent writers share groups (commit.go). SetParallelism counts in
	// multiples of GOMAXPROCS: about that many writers on any machine.
	for _, writers := range []int{16, 64} {
		b.Run(fmt.Sprintf("parallel-%d", writers), func(b *testing.B) {
			s := open(b)
			var n atomic.Int64
			b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
			st0 := s.CommitStats()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("par%09d", n.Add(1))
					if _, err := s.Create(subject(id, "wanted")); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
			reportGroups(b, st0, s.CommitStats())
		})
	}
}

// reportGroups reports the mean group size between two CommitStats.
func reportGroups(b *testing.B, before, after CommitStats) {
	if g := after.Groups - before.Groups; g > 0 {
		b.ReportMetric(float64(after.Creates-before.Creates)/float64(g), "creates/group")
	}
}

// bulkLoad writes n subjects with one 128-d template each, unsynced and
// batched, in the layout Create writes.
func bulkLoad(b *testing.B, s *Store, n int) {
	b.Helper()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	now := time.Now().UTC()
	lists := []string{"wanted", "watch", "vip"}
	for i := range n {
		sub, enc, err := prepare(subject(fmt.Sprintf("subj%08d", i), lists[i%len(lists)]))
		if err != nil {
			b.Fatal(err)
		}
		sub.Created, sub.Updated = now, now
		entries := []*badger.Entry{badger.NewEntry(subjectKey(sub.ID), encodeRecord(&sub, len(enc)))}
		for j, t := range enc {
			entries = append(entries, badger.NewEntry(templateKey(sub.ID, j), t))
		}
		for _, w := range sub.Watchlists {
			entries = append(entries, badger.NewEntry(watchlistKey(w, sub.ID), nil))
		}
		for _, e := range entries {
			if err := wb.SetEntry(e); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEach measures loading the gallery at start: one op is one Each
// over 100k subjects with one 128-d template each, after a close and reopen
// so that the data is read from the LSM tables, not the memtable.
func BenchmarkEach(b *testing.B) {
	const subjects = 100_000
	dir := b.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	bulkLoad(b, s, subjects)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	s = openAt(b, dir)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := s.Each(func(sub Subject) error {
			n += len(sub.Templates)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if n != subjects {
			b.Fatalf("%d templates", n)
		}
	}
	b.ReportMetric(float64(b.N*subjects)/b.Elapsed().Seconds(), "subjects/s")
}
