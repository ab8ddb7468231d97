package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/internal/idols"
	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// The photos the tests use. Each shows one face the HOG detector finds, but
// for noFace and group.
const (
	faces     = "../testdata/faces"
	enrolA    = faces + "/idols/tzuyu/1.jpg"
	probeA    = faces + "/idols/tzuyu/2.jpg"
	enrolB    = faces + "/bbt/sheldon/1.png"
	noFace    = faces + "/reference/white.png"
	groupShot = faces + "/reference/faces.jpg"
)

var (
	extractorsMu sync.Mutex
	extractors   = map[string]*face.Extractor{}
)

func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return "../models"
}

// sharedExtractor is the face extractor of most tests: dlib's network
// (face.DlibModel), whose scores and threshold (matcher.DefaultFaceThreshold)
// their expectations were measured with.
func sharedExtractor(t testing.TB) engine.FaceExtractor { return sharedModel(t, face.DlibModel) }

// sharedModel loads a face model once for the whole test binary: loading
// takes seconds and the extractor is safe for concurrent use.
func sharedModel(t testing.TB, model string) *face.Extractor {
	t.Helper()
	extractorsMu.Lock()
	defer extractorsMu.Unlock()
	if ex := extractors[model]; ex != nil {
		return ex
	}
	ex, err := face.NewExtractor(face.Config{ModelsDir: modelsDir(), Model: model, Workers: 2})
	if err != nil {
		t.Fatalf("loading face model %q (run `make models`): %v", model, err)
	}
	extractors[model] = ex
	return ex
}

type testServer struct {
	client pb.MatcherClient
	conn   *grpc.ClientConn
	store  *store.Store
	svc    *Service
	stop   func()
}

// startServer serves a real Service over gRPC on a loopback port, backed by a
// real Badger directory.
func startServer(t testing.TB, dir string) *testServer { return startServerWith(t, dir, nil) }

// startServerWith is startServer with a configuration hook.
func startServerWith(t testing.TB, dir string, configure func(*engine.Config)) *testServer {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.Config{Store: st, Faces: sharedExtractor(t), Threshold: matcher.DefaultFaceThreshold, Logger: zerolog.Nop()}
	if configure != nil {
		configure(&cfg)
	}
	svc, err := newService(cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	gs, _ := NewGRPCServer(svc, GRPCOptions{MaxMessageBytes: 4 << 20, Logger: zerolog.Nop()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{client: pb.NewMatcherClient(conn), conn: conn, store: st, svc: svc}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			conn.Close()
			gs.GracefulStop()
			if err := st.Close(); err != nil {
				t.Errorf("closing store: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

func photo(t testing.TB, path string) *pb.Sample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: b}}
}

func templateSample(t testing.TB, tpl templates.Template) *pb.Sample {
	t.Helper()
	b, err := tpl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &pb.Sample{Kind: &pb.Sample_Template{Template: b}}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status %v (%v), want %v", got, err, want)
	}
}

func count(t *testing.T, st *store.Store) int {
	t.Helper()
	n, err := st.Count()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnrollIdentifyVerifyDelete(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := context.Background()

	for _, s := range []struct{ id, name, photo string }{
		{"tzuyu", "Chou Tzuyu", enrolA},
		{"sheldon", "Sheldon Cooper", enrolB},
	} {
		resp, err := ts.client.Enroll(ctx, &pb.EnrollRequest{
			SubjectId: s.id, Name: s.name, Watchlists: []string{"wanted"},
			Samples: []*pb.Sample{photo(t, s.photo)}, Metadata: map[string]string{"case": "42"},
		})
		if err != nil {
			t.Fatalf("enrol %s: %v", s.id, err)
		}
		if q := resp.GetQuality()[0]; q.GetFacesFound() != 1 || q.GetInterEyePixels() <= 0 || q.GetBox().GetWidth() <= 0 {
			t.Errorf("enrol %s: quality %v", s.id, q)
		}
	}

	id, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA), TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(id.GetCandidates()) == 0 || id.GetCandidates()[0].GetSubjectId() != "tzuyu" {
		t.Fatalf("identify: candidates %v, want tzuyu first", id.GetCandidates())
	}
	c := id.GetCandidates()[0]
	if c.GetRank() != 1 || c.GetName() != "Chou Tzuyu" || c.GetScore() < id.GetThreshold() || c.GetWatchlists()[0] != "wanted" {
		t.Errorf("candidate %v", c)
	}
	t.Logf("identify %s: rank 1 %s score %.3f (threshold %.3f)", probeA, c.GetSubjectId(), c.GetScore(), id.GetThreshold())

	// A list nobody is on (a typo) is no silent "no hit": NotFound, naming
	// it and the lists there are; so is listing it.
	_, err = ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA), Watchlists: []string{"wanted", "wantd"}})
	wantStatus(t, err, codes.NotFound, `"wantd"`, `"wanted"`)
	_, err = ts.client.ListSubjects(ctx, &pb.ListSubjectsRequest{Watchlist: "wantd"})
	wantStatus(t, err, codes.NotFound, `"wantd"`, `"wanted"`)
	if l, err := ts.client.ListSubjects(ctx, &pb.ListSubjectsRequest{Watchlist: "wanted"}); err != nil || len(l.GetSubjects()) != 2 {
		t.Fatalf("listing wanted: %v %v", l.GetSubjects(), err)
	}
	// A list someone else is on finds nothing, and counts only its own
	// templates as searched.
	if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "other-1", Watchlists: []string{"other"},
		Samples: []*pb.Sample{photo(t, enrolB)}}); err != nil {
		t.Fatal(err)
	}
	id, err = ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA), Watchlists: []string{"other"}})
	if err != nil || len(id.GetCandidates()) != 0 || id.GetSearched() != 1 {
		t.Fatalf("identify on other list: %v, %d searched, %v", id.GetCandidates(), id.GetSearched(), err)
	}
	if _, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "other-1"}); err != nil {
		t.Fatal(err)
	}

	v, err := ts.client.Verify(ctx, &pb.VerifyRequest{Probe: photo(t, probeA), Reference: &pb.VerifyRequest_SubjectId{SubjectId: "tzuyu"}})
	if err != nil || !v.GetMatch() {
		t.Fatalf("verify genuine: %v %v", v, err)
	}
	v2, err := ts.client.Verify(ctx, &pb.VerifyRequest{Probe: photo(t, probeA), Reference: &pb.VerifyRequest_SubjectId{SubjectId: "sheldon"}})
	if err != nil || v2.GetMatch() || v2.GetScore() >= v.GetScore() {
		t.Fatalf("verify impostor: %v %v (genuine %v)", v2, err, v.GetScore())
	}
	v3, err := ts.client.Verify(ctx, &pb.VerifyRequest{Probe: photo(t, probeA), Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: photo(t, enrolA)}})
	if err != nil || !v3.GetMatch() || math.Abs(float64(v3.GetScore()-v.GetScore())) > 1e-4 {
		t.Fatalf("verify 1:1 by photo: %v %v (by subject %v)", v3, err, v.GetScore())
	}

	g, err := ts.client.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "tzuyu"})
	if err != nil || g.GetSubject().GetName() != "Chou Tzuyu" || len(g.GetSubject().GetTemplates()) != 1 || g.GetSubject().GetMetadata()["case"] != "42" {
		t.Fatalf("get: %v %v", g, err)
	}
	l, err := ts.client.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	if err != nil || len(l.GetWatchlists()) != 1 || l.GetWatchlists()[0].GetSubjectCount() != 2 {
		t.Fatalf("watchlists: %v %v", l, err)
	}

	if _, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "tzuyu"}); err != nil {
		t.Fatal(err)
	}
	id, err = ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA), Threshold: ptr(float32(-1))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range id.GetCandidates() {
		if c.GetSubjectId() == "tzuyu" {
			t.Fatal("deleted subject still identified")
		}
	}
	_, err = ts.client.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "tzuyu"})
	wantCode(t, err, codes.NotFound)
	_, err = ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "tzuyu"})
	wantCode(t, err, codes.NotFound)
}

func ptr[T any](v T) *T { return &v }

func TestRestartKeepsGallery(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ctx := context.Background()
	if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "tzuyu", Name: "Chou Tzuyu", Samples: []*pb.Sample{photo(t, enrolA)}}); err != nil {
		t.Fatal(err)
	}
	ts.stop()

	ts = startServer(t, dir)
	if n := ts.svc.eng.IndexSize(); n != 1 {
		t.Fatalf("index after restart holds %d templates, want 1", n)
	}
	id, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)})
	if err != nil || len(id.GetCandidates()) == 0 || id.GetCandidates()[0].GetSubjectId() != "tzuyu" {
		t.Fatalf("identify after restart: %v %v", id, err)
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := context.Background()
	if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "sheldon", Samples: []*pb.Sample{photo(t, enrolB)}}); err != nil {
		t.Fatal(err)
	}
	good := photo(t, enrolA)
	other := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.Algorithm{ID: "dlib-resnet29", Version: 0}, Vector: make([]float32, 128)}
	other.Vector[0] = 1
	corrupt, _ := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: other.Vector}.MarshalBinary()
	corrupt[len(corrupt)-5] ^= 0xff

	// A PNG header that claims 100000 x 100000 pixels.
	bomb := pngHeader(100000, 100000)

	tests := []struct {
		name string
		req  *pb.EnrollRequest
		want codes.Code
	}{
		{"no face", &pb.EnrollRequest{SubjectId: "x1", Samples: []*pb.Sample{photo(t, noFace)}}, codes.InvalidArgument},
		{"several faces", &pb.EnrollRequest{SubjectId: "x2", Samples: []*pb.Sample{photo(t, groupShot)}}, codes.InvalidArgument},
		{"not an image", &pb.EnrollRequest{SubjectId: "x3", Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: []byte("hello, not a photo")}}}}, codes.InvalidArgument},
		{"decompression bomb", &pb.EnrollRequest{SubjectId: "x4", Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: bomb}}}}, codes.ResourceExhausted},
		{"message too large", &pb.EnrollRequest{SubjectId: "x5", Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: make([]byte, 5<<20)}}}}, codes.ResourceExhausted},
		{"good then bad sample", &pb.EnrollRequest{SubjectId: "x6", Samples: []*pb.Sample{good, photo(t, noFace)}}, codes.InvalidArgument},
		{"no samples", &pb.EnrollRequest{SubjectId: "x7"}, codes.InvalidArgument},
		{"empty sample", &pb.EnrollRequest{SubjectId: "x8", Samples: []*pb.Sample{{}}}, codes.InvalidArgument},
		{"no id", &pb.EnrollRequest{Samples: []*pb.Sample{good}}, codes.InvalidArgument},
		{"bad id", &pb.EnrollRequest{SubjectId: "a/b c", Samples: []*pb.Sample{good}}, codes.InvalidArgument},
		{"bad watchlist", &pb.EnrollRequest{SubjectId: "x9", Watchlists: []string{"no spaces"}, Samples: []*pb.Sample{good}}, codes.InvalidArgument},
		{"existing id", &pb.EnrollRequest{SubjectId: "sheldon", Samples: []*pb.Sample{good}}, codes.AlreadyExists},
		{"other algorithm version", &pb.EnrollRequest{SubjectId: "x10", Samples: []*pb.Sample{templateSample(t, other)}}, codes.FailedPrecondition},
		{"corrupt template", &pb.EnrollRequest{SubjectId: "x11", Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: corrupt}}}}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.client.Enroll(ctx, tt.req)
			wantCode(t, err, tt.want)
			if n := count(t, ts.store); n != 1 {
				t.Fatalf("store holds %d subjects after a refused enrolment, want 1", n)
			}
			if n := ts.svc.eng.IndexSize(); n != 1 {
				t.Fatalf("index holds %d templates after a refused enrolment, want 1", n)
			}
		})
	}

	probes := []struct {
		name string
		req  *pb.IdentifyRequest
		want codes.Code
	}{
		{"no probe", &pb.IdentifyRequest{}, codes.InvalidArgument},
		{"no face", &pb.IdentifyRequest{Probe: photo(t, noFace)}, codes.InvalidArgument},
		{"several faces", &pb.IdentifyRequest{Probe: photo(t, groupShot)}, codes.InvalidArgument},
		{"top_k too large", &pb.IdentifyRequest{Probe: good, TopK: 1000}, codes.InvalidArgument},
		{"threshold out of range", &pb.IdentifyRequest{Probe: good, Threshold: ptr(float32(3))}, codes.InvalidArgument},
		{"other algorithm version", &pb.IdentifyRequest{Probe: templateSample(t, other)}, codes.FailedPrecondition},
	}
	for _, tt := range probes {
		t.Run("identify "+tt.name, func(t *testing.T) {
			_, err := ts.client.Identify(ctx, tt.req)
			wantCode(t, err, tt.want)
		})
	}
	// A gate camera may hand over a frame with several people in it.
	if _, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, groupShot), TakeLargestFace: true}); err != nil {
		t.Errorf("identify with take_largest_face: %v", err)
	}

	_, err := ts.client.Verify(ctx, &pb.VerifyRequest{Probe: good})
	wantCode(t, err, codes.InvalidArgument)
	_, err = ts.client.Verify(ctx, &pb.VerifyRequest{Probe: good, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "nobody"}})
	wantCode(t, err, codes.NotFound)
	_, err = ts.client.ListSubjects(ctx, &pb.ListSubjectsRequest{PageToken: "garbage!"})
	wantCode(t, err, codes.InvalidArgument)

	// An expired deadline is honoured, not worked through.
	dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	_, err = ts.client.Identify(dctx, &pb.IdentifyRequest{Probe: good})
	wantCode(t, err, codes.DeadlineExceeded)
}

func pngHeader(w, h uint32) []byte {
	ihdr := []byte("IHDR")
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// idolsGallery reads real face descriptors computed by dlib's original model.
func idolsGallery(t testing.TB) [][]float32 {
	t.Helper()
	faces, err := idols.Load(filepath.Join(faces, "idols", "idols.json"))
	if err != nil {
		t.Fatal(err)
	}
	vecs := make([][]float32, len(faces))
	for i, f := range faces {
		vecs[i] = f.Descriptor
	}
	return vecs
}

// TestConcurrentEnrollIdentify enrols real descriptors (as templates) from
// several goroutines while others identify and delete; run under -race.
func TestConcurrentEnrollIdentify(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := context.Background()
	vecs := idolsGallery(t)
	vecs = vecs[:200]
	tpl := func(i int) *pb.Sample {
		return templateSample(t, templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: vecs[i]})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	const writers = 4
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(vecs); i += writers {
				if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: fmt.Sprintf("s%03d", i), Watchlists: []string{fmt.Sprintf("l%d", i%3)}, Samples: []*pb.Sample{tpl(i)}}); err != nil {
					errs <- fmt.Errorf("enrol %d: %w", i, err)
					return
				}
				if i%10 == 0 {
					if _, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: fmt.Sprintf("s%03d", i)}); err != nil {
						errs <- fmt.Errorf("delete %d: %w", i, err)
						return
					}
				}
			}
		}(w)
	}
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: tpl((i*7 + r) % len(vecs)), TopK: 5, Threshold: ptr(float32(-1))})
				if err != nil {
					errs <- fmt.Errorf("identify: %w", err)
					return
				}
				for j, c := range resp.GetCandidates() {
					if j > 0 && c.GetScore() > resp.GetCandidates()[j-1].GetScore() {
						errs <- fmt.Errorf("candidates out of order: %v", resp.GetCandidates())
						return
					}
				}
			}
		}(r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := len(vecs) - len(vecs)/10
	if n := count(t, ts.store); n != want {
		t.Fatalf("store holds %d subjects, want %d", n, want)
	}
	if n := ts.svc.eng.IndexSize(); n != want {
		t.Fatalf("index holds %d templates, want %d", n, want)
	}
	// Every enrolled descriptor finds itself first.
	for i := 1; i < len(vecs); i += 17 {
		if i%10 == 0 {
			continue
		}
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: tpl(i), TopK: 1})
		if err != nil || len(resp.GetCandidates()) == 0 || resp.GetCandidates()[0].GetSubjectId() != fmt.Sprintf("s%03d", i) {
			t.Fatalf("identify s%03d: %v %v", i, resp, err)
		}
	}
}

func TestHealthAndConcurrentSameID(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := context.Background()
	h, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "bordermatch.v1.Matcher"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	vecs := idolsGallery(t)
	s := templateSample(t, templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: vecs[0]})
	var wg sync.WaitGroup
	codesSeen := make(chan codes.Code, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "same", Samples: []*pb.Sample{s}})
			codesSeen <- status.Code(err)
		}()
	}
	wg.Wait()
	close(codesSeen)
	ok := 0
	for c := range codesSeen {
		switch c {
		case codes.OK:
			ok++
		case codes.AlreadyExists:
		default:
			t.Errorf("concurrent enrol of one id: %v", c)
		}
	}
	if ok != 1 || ts.svc.eng.IndexSize() != 1 {
		t.Fatalf("%d enrolments of one id succeeded, index %d; want exactly 1", ok, ts.svc.eng.IndexSize())
	}
}
