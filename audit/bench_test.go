package audit

import (
	"testing"
)

// BenchmarkAppend: one audit record per audited call, each a synced Badger
// transaction on the test machine's disk.
func BenchmarkAppend(b *testing.B) {
	st := openStore(b, b.TempDir())
	defer st.Close()
	l := openLog(b, st, Options{})
	s := 0.97
	r := Record{Identity: "gate-07", Role: "gate", Auth: "cert", Gate: "T5-03", RPC: "/bordermatch.v1.Matcher/Identify",
		Hits: []Hit{{SubjectID: "P1234", Score: &s}}, Decision: "hit", Code: "OK"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel: 16 callers at once share disk syncs.
func BenchmarkAppendParallel(b *testing.B) {
	st := openStore(b, b.TempDir())
	defer st.Close()
	l := openLog(b, st, Options{})
	b.SetParallelism(8) // 8 × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(Record{Identity: "gate-07", RPC: "/bordermatch.v1.Matcher/Identify", Decision: "no-hit", Code: "OK"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if res, err := l.Verify(); err != nil || !res.OK {
		b.Fatalf("chain after parallel appends: %+v %v", res, err)
	}
}
