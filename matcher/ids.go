package matcher

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
)

// idTable holds the subject ids of an Index without a string per subject:
// the ids one after another in a byte arena (a uvarint length, then the
// bytes), and an open-addressing hash table (linear probing) of subject
// numbers + 1, 0 marking an empty slot, for id -> subject number.
//
// Why not map[string]int32: a map entry holds a string header (16 bytes)
// pointing at a separate allocation, some 50 bytes a subject in all, and
// every one of them is a pointer the garbage collector scans. Here a
// subject costs its id bytes, a length byte and 4 to 8 bytes of table,
// and the table and arena are two pointer-free slices.
//
// The table finds an id through the subjects' arena offsets, so the methods
// take the Index's subjects slice. Removal shifts the following entries
// back (no tombstones), so lookups never slow down with churn; a removed
// id's arena bytes are garbage until compact.
type idTable struct {
	arena []byte
	tab   []uint32 // length a power of two, or nil
	count int      // ids in the table
	waste int      // arena bytes of removed ids
	seed  maphash.Seed
}

func (t *idTable) init() { t.seed = maphash.MakeSeed() }

// id returns the id stored at off.
func (t *idTable) id(off uint32) []byte {
	n, k := binary.Uvarint(t.arena[off:])
	return t.arena[int(off)+k : int(off)+k+int(n)]
}

func (t *idTable) home(id []byte) int {
	return int(maphash.Bytes(t.seed, id) & uint64(len(t.tab)-1))
}

// lookup returns the subject number of id.
func (t *idTable) lookup(id string, subs []subject) (int32, bool) {
	if len(t.tab) == 0 {
		return 0, false
	}
	mask := len(t.tab) - 1
	for i := int(maphash.String(t.seed, id)) & mask; ; i = (i + 1) & mask {
		e := t.tab[i]
		if e == 0 {
			return 0, false
		}
		if string(t.id(subs[e-1].id)) == id {
			return int32(e - 1), true
		}
	}
}

// grow returns the table with room for idBytes more arena bytes and a hash
// table for subjects ids, sharing nothing it had to enlarge with t, so that
// a writer can prepare it while searches read t and swap it in under the
// lock. It only reads t.
func (t idTable) grow(idBytes, subjects int, subs []subject) idTable {
	t.arena = slices.Grow(t.arena, idBytes)
	if subjects*4 <= len(t.tab)*3 {
		return t
	}
	size := 1 << bits.Len(uint(subjects*4/3+1))
	size = max(size, 16)
	old := t.tab
	t.tab = make([]uint32, size)
	for _, e := range old {
		if e != 0 {
			t.insert(e, t.id(subs[e-1].id))
		}
	}
	return t
}

func (t *idTable) insert(e uint32, id []byte) {
	mask := len(t.tab) - 1
	i := t.home(id)
	for t.tab[i] != 0 {
		i = (i + 1) & mask
	}
	t.tab[i] = e
}

// add stores a new id of subject sn and returns its arena offset. The
// caller made room with grow.
func (t *idTable) add(id string, sn int32) uint32 {
	off := len(t.arena)
	if off > 1<<32-1-binary.MaxVarintLen32-len(id) {
		panic("matcher: more than 4 GiB of subject ids")
	}
	t.arena = binary.AppendUvarint(t.arena, uint64(len(id)))
	t.arena = append(t.arena, id...)
	t.insert(uint32(sn)+1, t.arena[len(t.arena)-len(id):])
	t.count++
	return uint32(off)
}

// remove deletes id, subject sn's, from the table.
func (t *idTable) remove(id string, sn int32, subs []subject) {
	mask := len(t.tab) - 1
	i := int(maphash.String(t.seed, id)) & mask
	for t.tab[i] != uint32(sn)+1 {
		i = (i + 1) & mask
	}
	t.tab[i] = 0
	// Shift back every following entry of the run whose home is not
	// cyclically in (i, j]: lookups stop at the first empty slot.
	for j := (i + 1) & mask; t.tab[j] != 0; j = (j + 1) & mask {
		e := t.tab[j]
		k := t.home(t.id(subs[e-1].id))
		if i <= j && (k <= i || k > j) || i > j && k <= i && k > j {
			t.tab[i], t.tab[j] = e, 0
			i = j
		}
	}
	t.count--
	t.waste += binary.PutUvarint(make([]byte, binary.MaxVarintLen32), uint64(len(id))) + len(id)
}

// wasteful reports whether removed ids take over half the arena.
func (t *idTable) wasteful() bool { return t.waste > 64<<10 && 2*t.waste > len(t.arena) }

// compact rewrites the arena with the live subjects' ids only (those with
// a row) and updates their offsets.
func (t *idTable) compact(subs []subject) {
	arena := make([]byte, 0, len(t.arena)-t.waste)
	for i := range subs {
		if subs[i].first < 0 {
			continue
		}
		id := t.id(subs[i].id)
		subs[i].id = uint32(len(arena))
		arena = binary.AppendUvarint(arena, uint64(len(id)))
		arena = append(arena, id...)
	}
	t.arena, t.waste = arena, 0
}

// idOf returns the id of subject number sn.
func (ix *Index) idOf(sn int32) []byte { return ix.ids.id(ix.subjects[sn].id) }
