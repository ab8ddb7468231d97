package store

// Per-shard digests of what the store holds, for the cluster's reconciler
// (issue 15): replicas of a shard must hold the same subjects, and the same
// subjects as the enrolment log says; comparing two 32-byte digests per
// shard finds a divergence without shipping the gallery.
//
// Each subject contributes two SHA-256 hashes, combined per shard by
// addition modulo 2^256 (order-independent, so the walk order and the shard
// layout do not matter; unlike XOR, a subject counted twice does not cancel
// out):
//
//	IDs      SHA-256(id)
//	Content  SHA-256 of, each string or byte string length-prefixed
//	         (uvarint): "bm-subject-v1", id, name, the metadata count and
//	         its key/value pairs by key, the watchlist count and the
//	         watchlists sorted, the template count and each stored
//	         template's bytes in sequence order
//
// Created and Updated times are left out: they are set once on the
// coordinating node and carried in the log, but a subject imported or
// restored may carry others without holding different biometrics.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"math/bits"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
)

// ShardDigest summarises one shard's subjects.
type ShardDigest struct {
	// Count is the number of subjects.
	Count int
	// IDs is the sum modulo 2^256 of SHA-256 of each subject id.
	IDs [32]byte
	// Content is the sum modulo 2^256 of each subject's content hash
	// (id, name, metadata, watchlists, templates).
	Content [32]byte
}

// Add adds one subject's hashes to the digest.
func (d *ShardDigest) Add(idHash, contentHash [32]byte) {
	d.Count++
	AddDigest(&d.IDs, idHash)
	AddDigest(&d.Content, contentHash)
}

// AddDigest sets *sum to *sum + h modulo 2^256 (big endian).
func AddDigest(sum *[32]byte, h [32]byte) {
	var carry uint64
	for i := 24; i >= 0; i -= 8 {
		a := binary.BigEndian.Uint64(sum[i:])
		b := binary.BigEndian.Uint64(h[i:])
		s, c := bits.Add64(a, b, carry)
		binary.BigEndian.PutUint64(sum[i:], s)
		carry = c
	}
}

// IDHash is a subject id's contribution to ShardDigest.IDs.
func IDHash(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// ContentHash is a subject's contribution to ShardDigest.Content: sub's
// id, name, metadata and watchlists, and tpls, the encoded templates in
// the order they are stored.
func ContentHash(sub *Subject, tpls [][]byte) [32]byte {
	h := sha256.New()
	var buf []byte
	str := func(b []byte) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(b)))
		h.Write(buf)
		h.Write(b)
	}
	num := func(n int) {
		buf = binary.AppendUvarint(buf[:0], uint64(n))
		h.Write(buf)
	}
	str([]byte("bm-subject-v1"))
	str([]byte(sub.ID))
	str([]byte(sub.Name))
	num(len(sub.Metadata))
	for _, k := range slices.Sorted(maps.Keys(sub.Metadata)) {
		str([]byte(k))
		str([]byte(sub.Metadata[k]))
	}
	lists := slices.Sorted(slices.Values(sub.Watchlists))
	num(len(lists))
	for _, w := range lists {
		str([]byte(w))
	}
	num(len(tpls))
	for _, t := range tpls {
		str(t)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ShardDigests walks every subject once, from one consistent snapshot, and
// returns the digest of each shard that holds a subject (shardOf maps an id
// to its shard; cluster.ShardOf with the cluster's shard count). A record or
// template that does not read is an error naming the subject.
func (s *Store) ShardDigests(shardOf func(id string) int) (map[int]ShardDigest, error) {
	out := map[int]ShardDigest{}
	var (
		sub  Subject
		tpls [][]byte
	)
	err := s.walk(subjectWalker{
		record: func(id []byte, item *badger.Item) (int, error) {
			sub = Subject{ID: string(id)}
			tpls = tpls[:0]
			var n int
			err := item.Value(func(v []byte) error {
				var err error
				n, err = decodeRecord(v, &sub, nil)
				return err
			})
			return n, err
		},
		template: func(item *badger.Item) error {
			b, err := item.ValueCopy(nil)
			if err != nil {
				_, seq, _ := splitTemplateKey(item.Key())
				return fmt.Errorf("store: subject %q: template %d: %w", sub.ID, seq, err)
			}
			tpls = append(tpls, b)
			return nil
		},
		done: func() error {
			shard := shardOf(sub.ID)
			d := out[shard]
			d.Add(IDHash(sub.ID), ContentHash(&sub, tpls))
			out[shard] = d
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
