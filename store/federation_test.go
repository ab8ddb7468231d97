package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestFederationKV: the federation state's keys, apart from the gallery's.
func TestFederationKV(t *testing.T) {
	s := open(t)
	kv := s.Federation()
	if _, found, err := kv.Get("r/x"); found || err != nil {
		t.Fatalf("Get of nothing: %v %v", found, err)
	}
	if err := kv.Put("r/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if stored, err := kv.PutIfAbsent("r/x", []byte("2")); stored || err != nil {
		t.Fatalf("PutIfAbsent over a value: %v %v", stored, err)
	}
	if stored, err := kv.PutIfAbsent("r/y", []byte("3")); !stored || err != nil {
		t.Fatalf("PutIfAbsent: %v %v", stored, err)
	}
	// Concurrent updates of one key: each lands whole or fails (a
	// conflict after the retries), none is lost.
	if err := kv.Put("n", []byte("0")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	landed := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := kv.Update("n", func(old []byte) ([]byte, error) {
				var n int
				fmt.Sscan(string(old), &n)
				return []byte(fmt.Sprint(n + 1)), nil
			})
			if err == nil {
				mu.Lock()
				landed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if v, _, _ := kv.Get("n"); string(v) != fmt.Sprint(landed) || landed == 0 {
		t.Fatalf("%d updates landed, the value is %s", landed, v)
	}
	stop := errors.New("stop")
	if err := kv.Update("n", func([]byte) ([]byte, error) { return nil, stop }); !errors.Is(err, stop) {
		t.Fatal(err)
	}
	var keys []string
	if err := kv.Scan("r/", func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[r/x r/y]" {
		t.Fatalf("Scan: %v", keys)
	}
	if err := kv.Delete("r/x"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := kv.Get("r/x"); found {
		t.Fatal("deleted, still there")
	}
	// Not gallery content.
	if n, err := s.Count(); err != nil || n != 0 {
		t.Fatalf("subjects: %d %v", n, err)
	}
	if _, _, err := kv.Get(""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
}
