package store

import (
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
)

func shardOf8(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % 8)
}

func digests(t *testing.T, s *Store) map[int]ShardDigest {
	t.Helper()
	d, err := s.ShardDigests(shardOf8)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestShardDigests(t *testing.T) {
	a, b := open(t), open(t)
	if d := digests(t, a); len(d) != 0 {
		t.Fatalf("empty store: %v", d)
	}
	const n = 60
	subs := make([]Subject, n)
	for i := range subs {
		subs[i] = Subject{ID: fmt.Sprint("D-", i), Name: fmt.Sprint("Name ", i),
			Metadata: map[string]string{"k": fmt.Sprint(i), "a": "b"}, Watchlists: []string{"z", "a"},
			Templates: []templates.Template{tpl(i), tpl(i + 1000)}}
	}
	// The same subjects in opposite orders give the same digests.
	for i := range subs {
		mustCreate(t, a, subs[i])
		mustCreate(t, b, subs[n-1-i])
	}
	da, db := digests(t, a), digests(t, b)
	total := 0
	for shard, d := range da {
		if d != db[shard] {
			t.Fatalf("shard %d: %+v vs %+v", shard, d, db[shard])
		}
		total += d.Count
	}
	if total != n || len(da) != len(db) || len(da) < 2 {
		t.Fatalf("%d subjects in %d shards (%d)", total, len(da), len(db))
	}

	// A subject with other content: the IDs digest agrees, the content not.
	x := subs[7]
	if _, err := b.Delete(x.ID); err != nil {
		t.Fatal(err)
	}
	x.Name = "Renamed"
	mustCreate(t, b, x)
	sx := shardOf8(x.ID)
	da, db = digests(t, a), digests(t, b)
	if da[sx].IDs != db[sx].IDs || da[sx].Count != db[sx].Count || da[sx].Content == db[sx].Content {
		t.Fatalf("renamed: %+v vs %+v", da[sx], db[sx])
	}
	// Other templates: content differs.
	x = subs[7]
	x.Templates = []templates.Template{tpl(7), tpl(7)}
	b.Delete(x.ID)
	mustCreate(t, b, x)
	if db = digests(t, b); da[sx].Content == db[sx].Content {
		t.Fatal("other templates, same content digest")
	}
	// Put back: equal again; deleted: count and ids differ.
	b.Delete(x.ID)
	mustCreate(t, b, subs[7])
	if db = digests(t, b); da[sx] != db[sx] {
		t.Fatalf("restored: %+v vs %+v", da[sx], db[sx])
	}
	b.Delete(x.ID)
	db = digests(t, b)
	if db[sx].Count != da[sx].Count-1 || db[sx].IDs == da[sx].IDs {
		t.Fatalf("deleted: %+v vs %+v", da[sx], db[sx])
	}
	// The sum is the sum of the parts.
	var want ShardDigest
	for _, s := range subs {
		if shardOf8(s.ID) == sx && s.ID != x.ID {
			got, err := b.Get(s.ID)
			if err != nil {
				t.Fatal(err)
			}
			enc := make([][]byte, len(got.Templates))
			for i, tp := range got.Templates {
				enc[i], _ = tp.MarshalBinary()
			}
			want.Add(IDHash(s.ID), ContentHash(&got, enc))
		}
	}
	if want != db[sx] {
		t.Fatalf("shard %d: parts sum to %+v, digest %+v", sx, want, db[sx])
	}
}

func TestAddDigestCarries(t *testing.T) {
	var sum, one [32]byte
	for i := range sum {
		sum[i] = 0xff
	}
	one[31] = 1
	AddDigest(&sum, one)
	if sum != ([32]byte{}) {
		t.Fatalf("2^256-1 + 1 = %x", sum)
	}
}
