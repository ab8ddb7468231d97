package engine

// Loading the in-memory indexes from the store and keeping them in step
// with it, subject by subject.

import (
	"fmt"
	"slices"
	"time"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// loadBatch is how many face templates load gives the index at a time.
const loadBatch = 4096

// load fills the indexes from the store. It streams the store (Scan) and
// hands the face vectors to the index in batches, decoding into reused
// buffers, so a million-subject gallery loads without a million-fold
// allocation of subjects and vectors; only subjects with fingers, which
// need their prepared fingers kept, go through indexSubject.
func (s *Engine) load() error {
	start := time.Now()
	n, err := s.store.Count()
	if err != nil {
		return fmt.Errorf("engine: loading index: %w", err)
	}
	// One face a subject is the common case; more grow the index as
	// needed. Reserving the exact room spares the index append's slack.
	// Only the default algorithm's index is reserved and batch-loaded; a
	// gallery moving between algorithms loads the others subject by
	// subject.
	def := s.def
	if def.index.Len() == 0 {
		def.index.Reserve(n, n)
	}
	faceDim := def.dim
	subjects := 0
	// Two stages on two goroutines, so that reading Badger overlaps
	// quantising into the index: this one walks the store and decodes
	// into batches, the other adds full batches. Three batch buffers go
	// round between them.
	type batchBuf struct {
		entries []matcher.Entry
		vecs    []float32
		lists   []string // the batch's watchlists, one after another
	}
	free, full := make(chan *batchBuf, 3), make(chan *batchBuf, 3)
	for range 3 {
		free <- &batchBuf{vecs: make([]float32, loadBatch*faceDim)}
	}
	added := make(chan struct{})
	go func() {
		for b := range full {
			s.addBatch(def, b.entries)
			b.entries, b.lists = b.entries[:0], b.lists[:0]
			free <- b
		}
		close(added)
	}()
	s.quarantined.mu.Lock()
	s.quarantined.by = nil // rebuilt from the store
	s.quarantined.mu.Unlock()
	cur := <-free
	var decoded []templates.Template
	err = s.store.Scan(func(sub *store.IndexSubject) error {
		subjects++
		if sub.Damaged != nil {
			s.quarantine(string(sub.ID), sub.Damaged)
			return nil
		}
		decoded = decoded[:0]
		for i, raw := range sub.Templates {
			t, stale, bad := loadable(raw)
			if bad != nil {
				s.quarantine(string(sub.ID), fmt.Errorf("template %d: %w", i, bad))
				return nil
			}
			if stale {
				s.stale++
				continue
			}
			if t.Modality == templates.ModalityFace {
				// Every algorithm present gets an index; the first
				// template of an unknown one fixes its dimension.
				if _, err := s.algoFor(t, true); err != nil {
					s.stale++
					continue
				}
			}
			decoded = append(decoded, t)
		}
		switch {
		case len(decoded) == 0:
			return nil
		case len(decoded) == 1 && decoded[0].Modality == templates.ModalityFace && decoded[0].Algorithm == def.alg:
			// The common case, one face: into the batch, the vector
			// copied into a reused buffer (the index copies it again).
			if len(cur.entries) == loadBatch {
				full <- cur
				cur = <-free
			}
			n := len(cur.entries)
			v := cur.vecs[n*faceDim : (n+1)*faceDim]
			copy(v, decoded[0].Vector)
			l := len(cur.lists)
			cur.lists = append(cur.lists, sub.Watchlists...)
			cur.entries = append(cur.entries, matcher.Entry{SubjectID: string(sub.ID), Vector: v, Watchlists: cur.lists[l:len(cur.lists):len(cur.lists)]})
			return nil
		}
		full := store.Subject{ID: string(sub.ID), Watchlists: slices.Clone(sub.Watchlists)}
		var fingers []fingerRef
		for _, t := range decoded {
			if t.Modality != templates.ModalityFinger {
				full.Templates = append(full.Templates, t)
				continue
			}
			ft, err := matcher.PrepareFinger(*t.Finger)
			if err != nil {
				s.quarantine(full.ID, fmt.Errorf("preparing a finger: %w", err))
				return nil
			}
			fingers = append(fingers, fingerRef{t.Position(), ft})
		}
		if err := s.indexSubject(full, fingers); err != nil {
			s.unindex(full.ID)
			s.quarantine(full.ID, fmt.Errorf("indexing: %w", err))
		}
		return nil
	})
	if len(cur.entries) > 0 {
		full <- cur
	}
	close(full)
	<-added
	if err != nil {
		return fmt.Errorf("engine: loading index: %w", err)
	}
	ev := s.log.Info()
	q := s.QuarantinedCount()
	if q > 0 || s.stale > 0 {
		ev = s.log.Warn()
	}
	if q > 0 {
		ev = ev.Int("quarantined", q).Str("quarantine_hint", "subjects with templates that do not decode or are no face's or finger's are not searched; see watchlist quarantine list")
	}
	if s.stale > 0 {
		ev = ev.Int("stale_templates", s.stale).
			Str("hint", "face templates whose dimension is not their algorithm's are not searched; re-enrol those subjects")
	}
	faces := 0
	for _, fa := range s.algos.all() {
		faces += fa.index.Len()
		if fa.index.Len() > 0 || fa.ex != nil {
			s.log.Info().Str("algorithm", fa.alg.String()).Int("dim", fa.dim).Bool("loaded", fa.ex != nil).Bool("default", fa == s.def).
				Int("templates", fa.index.Len()).Int("subjects", fa.index.Subjects()).Float32("threshold", fa.threshold).Msg("face algorithm")
		}
	}
	ev.Int("subjects", subjects).Int("templates", faces).Int("fingers", s.fingers.Len()).
		Dur("took_ms", time.Since(start)).Msg("index loaded")
	return nil
}

// addBatch adds a batch of load's face entries to fa's index. Load checked
// every vector as the index does, so the batch should go in whole; if it
// does not, the entries go in one by one and those refused are
// quarantined, rather than one record failing the whole load.
func (s *Engine) addBatch(fa *faceAlgo, es []matcher.Entry) {
	if err := fa.index.AddBatch(es); err == nil {
		s.faced.Add(int64(len(es)))
		return
	}
	for _, e := range es {
		if err := fa.index.Add(e); err != nil {
			s.quarantine(e.SubjectID, fmt.Errorf("indexing: %w", err))
			continue
		}
		s.faced.Add(1)
	}
}

// indexSubject adds a stored subject's compatible face templates and its
// prepared fingers to the indexes. The caller holds the subject's lock (or
// is loading, alone).
func (s *Engine) indexSubject(sub store.Subject, fingers []fingerRef) error {
	faces := 0
	before := s.inFaceIndex(sub.ID)
	for _, t := range sub.Templates {
		if t.Modality != templates.ModalityFace || t.Comparable() != nil {
			continue
		}
		fa := s.algos.get(t.Algorithm)
		if fa == nil || fa.dim != len(t.Vector) {
			continue // refused before it was stored, or stale
		}
		if err := fa.index.Add(matcher.Entry{SubjectID: sub.ID, Vector: t.Vector, Watchlists: sub.Watchlists}); err != nil {
			return err
		}
		faces++
	}
	if !before && faces > 0 {
		s.faced.Add(1)
	}
	for _, f := range fingers {
		if err := s.fingers.Add(sub.ID, f.pos, f.t); err != nil {
			return err
		}
	}
	if len(fingers) == 0 {
		return nil
	}
	// The finger index filters by watchlist itself (searches restricted to
	// lists shortlist only their subjects).
	s.fingers.SetWatchlists(sub.ID, sub.Watchlists)
	s.subjectsMu.Lock()
	s.fingered[sub.ID] = &subjectInfo{watchlists: sub.Watchlists, faces: faces, fingers: fingers}
	s.subjectsMu.Unlock()
	return nil
}

// inFaceIndex reports whether a subject is in any face index.
func (s *Engine) inFaceIndex(id string) bool {
	for _, fa := range s.algos.all() {
		if _, _, ok := fa.index.Subject(id); ok {
			return true
		}
	}
	return false
}

// Subjects counts the subjects with a searchable template: those of the
// face indexes, and those with fingers only.
func (s *Engine) Subjects() int {
	n := int(s.faced.Load())
	s.subjectsMu.RLock()
	defer s.subjectsMu.RUnlock()
	for _, info := range s.fingered {
		if info.faces == 0 {
			n++
		}
	}
	return n
}

// unindex removes a subject from the indexes. The caller holds its lock.
func (s *Engine) unindex(id string) {
	s.subjectsMu.Lock()
	delete(s.fingered, id)
	s.subjectsMu.Unlock()
	removed := false
	for _, fa := range s.algos.all() {
		removed = fa.index.Remove(id) > 0 || removed
	}
	if removed {
		s.faced.Add(-1)
	}
	s.fingers.Remove(id)
}

// subject returns what scoring needs of an indexed subject, or nil.
func (s *Engine) subject(id string) *subjectInfo {
	s.subjectsMu.RLock()
	info := s.fingered[id]
	s.subjectsMu.RUnlock()
	if info != nil {
		return info
	}
	var found *subjectInfo
	for _, fa := range s.algos.all() {
		lists, faces, ok := fa.index.Subject(id)
		if !ok {
			continue
		}
		if found == nil {
			found = &subjectInfo{watchlists: lists}
		}
		found.faces += faces
	}
	return found
}

// faceTemplates counts the searchable face templates of every algorithm.
func (s *Engine) faceTemplates() int {
	n := 0
	for _, fa := range s.algos.all() {
		n += fa.index.Len()
	}
	return n
}

// IndexSize reports the number of searchable templates (faces and fingers).
func (s *Engine) IndexSize() int { return s.faceTemplates() + s.fingers.Len() }
