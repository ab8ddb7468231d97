package main

// A damaged gallery (issue 19): a real matchd's table file with a bit
// flipped or cut short. matchd must not panic or start silently without
// it; matchd check must report it; matchd salvage must bring every
// readable subject into a new data directory that starts and searches.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

// runMatchd runs a matchd subcommand (or a start that must fail) and
// returns its stdout, stderr and exit code.
func runMatchd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "matchd"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// copyTree copies the directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newestTable is the last table matchd wrote in data's gallery.
func newestTable(t *testing.T, data string) string {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(data, "gallery", "*.sst"))
	if len(ssts) < 2 {
		t.Fatalf("tables %v in %s/gallery, want two", ssts, data)
	}
	slices.Sort(ssts)
	return ssts[len(ssts)-1]
}

func corruptID(i int) string { return fmt.Sprintf("corrupt-%03d", i) }

func TestDamagedGallery(t *testing.T) {
	const n = 150
	// Two sessions: each stop flushes a table, so the damaged one (the
	// second) holds the second half's subjects and the first half's are
	// in a sound one.
	pristine := t.TempDir()
	for half := range 2 {
		d := startMatchd(t, pristine, "--rate-limit", "0")
		conn := dialMatchd(t, d.addr)
		waitServing(t, conn)
		c := pb.NewMatcherClient(conn)
		for i := half * n / 2; i < (half+1)*n/2; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Enroll(ctx, &pb.EnrollRequest{SubjectId: corruptID(i), Name: "Damaged " + corruptID(i), Watchlists: []string{"corrupt"},
				Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: crashFace(uint64(7000+i), 0)}}}})
			cancel()
			if err != nil {
				t.Fatalf("enrol %d: %v", i, err)
			}
		}
		conn.Close()
		d.stop(t)
	}

	out, errs, code := runMatchd(t, "check", "--data", pristine)
	if code != 0 || !strings.Contains(out, "check passed") || !strings.Contains(out, fmt.Sprintf("subjects: %d whole, 0 damaged", n)) {
		t.Fatalf("check of a sound gallery: exit %d\n%s%s", code, out, errs)
	}

	for _, tc := range []struct {
		name    string
		damage  func(path string) error
		salvage bool
	}{
		{"flip in a data block", flipFile(0.3), true},
		{"flip late in the data", flipFile(0.7), false},
		{"flip in the index", flipFile(-60), false},
		{"flip in the footer", flipFile(-2), false},
		{"truncated by 100 bytes", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-100)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			copyTree(t, pristine, data)
			sst := newestTable(t, data)
			if err := tc.damage(sst); err != nil {
				t.Fatal(err)
			}
			// The start refuses, naming the file; never a panic (exit 2
			// and a stack), never a start without the table.
			out, errs, code := runMatchd(t, "--listen", freeAddr(t), "--data", data, "--models", modelsDir(t), "--log-format", "json")
			if code != 1 || goPanic(errs) || !strings.Contains(errs, filepath.Base(sst)) || !strings.Contains(errs, "corrupt") {
				t.Fatalf("start on a damaged gallery: exit %d, want 1 naming %s\n%s%s", code, filepath.Base(sst), out, errs)
			}
			out, errs, code = runMatchd(t, "check", "--data", data)
			if code != 1 || !strings.Contains(out, "DAMAGED "+sst) || goPanic(errs) {
				t.Fatalf("check of a damaged gallery: exit %d, want 1 naming %s\n%s%s", code, sst, out, errs)
			}
			if !tc.salvage {
				return
			}
			salvaged := filepath.Join(t.TempDir(), "salvaged")
			out, errs, code = runMatchd(t, "salvage", "--data", data, "--out", salvaged)
			if code != 0 || !strings.Contains(out, "DAMAGED "+sst) {
				t.Fatalf("salvage: exit %d\n%s%s", code, out, errs)
			}
			t.Logf("salvage:\n%s", out)
			if out, errs, code := runMatchd(t, "check", "--data", salvaged); code != 0 {
				t.Fatalf("check of the salvaged gallery: exit %d\n%s%s", code, out, errs)
			}
			d := startMatchd(t, salvaged, "--rate-limit", "0")
			conn := dialMatchd(t, d.addr)
			defer conn.Close()
			waitServing(t, conn)
			c := pb.NewMatcherClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l, err := c.ListSubjects(ctx, &pb.ListSubjectsRequest{PageSize: 1000, Watchlist: "corrupt"})
			if err != nil {
				t.Fatal(err)
			}
			back := map[string]bool{}
			for _, s := range l.GetSubjects() {
				back[s.GetId()] = true
			}
			// A table whose index does not read is lost whole: the first
			// half, in the sound table, must all be back.
			wholeTable := strings.Contains(out, "LOST keys: all of "+filepath.Base(sst))
			if min := n * 9 / 10; wholeTable {
				if min = n / 2; len(back) < min {
					t.Fatalf("%d of %d subjects salvaged, want the %d of the sound table", len(back), n, min)
				}
			} else if len(back) < min {
				t.Fatalf("%d of %d subjects salvaged from one bad block", len(back), n)
			}
			for i := range n {
				id := corruptID(i)
				if !back[id] {
					if wholeTable && i < n/2 || !wholeTable && !strings.Contains(out, fmt.Sprintf("LOST subject %q", id)) {
						t.Errorf("%s neither salvaged nor listed as lost", id)
					}
					continue
				}
				// Every salvaged subject is searchable.
				res, err := c.Identify(ctx, &pb.IdentifyRequest{TopK: 1,
					Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: crashFace(uint64(7000+i), 0)}}})
				if err != nil || len(res.GetCandidates()) == 0 || res.GetCandidates()[0].GetSubjectId() != id {
					t.Fatalf("identify %s in the salvaged gallery: %v %v", id, res, err)
				}
			}
		})
	}
}

// goPanic reports whether a process's stderr holds a Go panic's report.
func goPanic(stderr string) bool {
	return strings.HasPrefix(stderr, "panic: ") || strings.Contains(stderr, "\npanic: ") || strings.Contains(stderr, "goroutine ")
}

// flipFile flips one bit at the fraction at of a file (negative: bytes
// from its end).
func flipFile(at float64) func(string) error {
	return func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		i := int(at * float64(len(b)))
		if at < 0 {
			i = len(b) + int(at)
		}
		b[i] ^= 0x10
		return os.WriteFile(path, b, 0o644)
	}
}

// TestDegradedStart: a subject whose record does not read (its bytes
// damaged though Badger's checksums hold) does not keep matchd from
// starting: it starts degraded, names the subject in its log, searches the
// others; check names the subject and fails; salvage leaves it out and
// lists it.
func TestDegradedStart(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data, "--rate-limit", "0")
	conn := dialMatchd(t, d.addr)
	waitServing(t, conn)
	c := pb.NewMatcherClient(conn)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Enroll(ctx, &pb.EnrollRequest{SubjectId: corruptID(i), Name: "Degraded",
			Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: crashFace(uint64(9000+i), 0)}}}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	d.stop(t)

	sopt, _, err := engine.GalleryOptions(data, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(sopt)
	if err != nil {
		t.Fatal(err)
	}
	victim := corruptID(1)
	if err := st.DB().Update(func(txn *badger.Txn) error {
		return txn.Set([]byte("s/"+victim), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	d = startMatchd(t, data, "--rate-limit", "0")
	conn = dialMatchd(t, d.addr)
	waitServing(t, conn)
	c = pb.NewMatcherClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, i := range []int{0, 2} {
		res, err := c.Identify(ctx, &pb.IdentifyRequest{TopK: 1, Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: crashFace(uint64(9000+i), 0)}}})
		if err != nil || len(res.GetCandidates()) == 0 || res.GetCandidates()[0].GetSubjectId() != corruptID(i) {
			t.Fatalf("identify %s on a degraded start: %v %v", corruptID(i), res, err)
		}
	}
	conn.Close()
	d.stop(t)
	if log := d.log.String(); !strings.Contains(log, "DEGRADED") || !strings.Contains(log, `"subject":"`+victim+`"`) {
		t.Fatalf("the log does not say the start is degraded, naming %s:\n%s", victim, log)
	}
	out, errs, code := runMatchd(t, "check", "--data", data)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("DAMAGED subject %q", victim)) {
		t.Fatalf("check: exit %d, want 1 naming %s\n%s%s", code, victim, out, errs)
	}
	salvaged := filepath.Join(t.TempDir(), "salvaged")
	out, errs, code = runMatchd(t, "salvage", "--data", data, "--out", salvaged)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("LOST subject %q", victim)) || !strings.Contains(out, "salvaged 2 subjects") {
		t.Fatalf("salvage: exit %d\n%s%s", code, out, errs)
	}
}
