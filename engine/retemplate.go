package engine

// Re-templating the gallery with another face algorithm.
//
// Retemplate(algorithm) starts a background job that walks the gallery in
// subject id order. For every subject with kept face photos (store
// samples.go) it extracts them with the named loaded algorithm and stores
// the new templates beside the subject's others, in one Badger transaction
// per subject that also writes the job's state (the cursor: the last
// subject done, and the counts), under the subject's lock, so that
// enrolments, deletions and searches go on and stay correct: a subject is in
// its old algorithm's index all along, and in the new one's from its
// transaction on. When every subject is done, a second pass removes the
// templates of every other face algorithm from the subjects that got a
// template of the new one. A subject whose photos do not all extract keeps
// its old templates only and is listed as failed; one with no kept photo
// (enrolled from templates, or with samples not kept) keeps its old
// templates and is listed as needing re-enrolment.
//
// The job's state lives in the gallery (meta/job/retemplate): a job
// interrupted by a crash or a stop resumes from its cursor when the engine
// next starts, and the engine runs one job at a time.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// Phases and states of a re-templating job.
const (
	PhaseTemplating = "templating" // extracting the kept photos with the new algorithm
	PhaseCleanup    = "cleanup"    // removing other algorithms' face templates
	PhaseDone       = "done"

	JobNone    = "none"    // no job has run on this gallery
	JobRunning = "running" // running now
	JobStopped = "stopped" // unfinished and not running (see Error); Retemplate resumes it
	JobDone    = "done"
)

// retemplateJob is the job's name in the store.
const retemplateJob = "retemplate"

// maxListed bounds the failed and needing-re-enrolment subjects a status
// lists; the counts are exact.
const maxListed = 1000

// RetemplateFailure is a subject whose kept samples did not extract.
type RetemplateFailure struct {
	SubjectID string `json:"subject_id"`
	Reason    string `json:"reason"`
}

// RetemplateStatus is the progress of a re-templating job.
type RetemplateStatus struct {
	// State is JobNone, JobRunning, JobStopped or JobDone; Phase the
	// job's (PhaseTemplating, PhaseCleanup, PhaseDone).
	State     string `json:"-"`
	Algorithm string `json:"algorithm"`
	Phase     string `json:"phase"`
	// Cursor is the last subject id the phase finished.
	Cursor string `json:"cursor"`
	// Total is the gallery's subjects when the job started (or the
	// subjects done, when more were enrolled meanwhile); Done the subjects
	// visited, whatever came of them; Templated those given templates of
	// Algorithm; Failed those whose samples did not extract; NeedReenrol
	// those with face templates but no kept photo; Cleaned those whose
	// other algorithms' templates were removed.
	Total       int `json:"total"`
	Done        int `json:"done"`
	Templated   int `json:"templated"`
	Failed      int `json:"failed"`
	NeedReenrol int `json:"need_reenrol"`
	Cleaned     int `json:"cleaned"`
	// Failures and NeedsReenrolment list (the first maxListed) subjects.
	Failures         []RetemplateFailure `json:"failures,omitempty"`
	NeedsReenrolment []string            `json:"needs_reenrolment,omitempty"`
	Started          time.Time           `json:"started"`
	Finished         time.Time           `json:"finished,omitzero"`
	// Rate is subjects a second since this process (re)started the job.
	Rate float64 `json:"-"`
	// Error says why a stopped job is not running.
	Error string `json:"error,omitempty"`
}

// jobRunner is the engine's one job.
type jobRunner struct {
	mu      sync.Mutex
	st      *RetemplateStatus // nil: none known
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
	// This run's start and subjects done, for Rate.
	runStart time.Time
	runDone  int
	// stopAfter, a test hook: stop (as a crash would) after that many
	// subjects of this run; 0: never.
	stopAfter int
}

// errStopHook stops a job at the test hook.
var errStopHook = errors.New("stopped by the test hook")

// findAlgo resolves an algorithm name: its full name ("dlib-resnet29/v1")
// or its id when one loaded algorithm has it.
func (s *Engine) findAlgo(name string) (*faceAlgo, error) {
	var loaded []string
	var byID []*faceAlgo
	for _, fa := range s.algos.all() {
		if fa.ex == nil {
			continue
		}
		loaded = append(loaded, fa.alg.String())
		if fa.alg.String() == name {
			return fa, nil
		}
		if fa.alg.ID == name {
			byID = append(byID, fa)
		}
	}
	if len(byID) == 1 {
		return byID[0], nil
	}
	sort.Strings(loaded)
	if len(loaded) == 0 {
		loaded = []string{"none"}
	}
	return nil, invalid("algorithm %q is not loaded (loaded: %s)", name, strings.Join(loaded, ", "))
}

// Retemplate starts re-templating the gallery with a loaded face algorithm
// (see above) and returns the job's status. A job already running for the
// same algorithm is not started again: its status is returned; one for
// another algorithm is ErrBusy. An unfinished job of the same algorithm
// resumes from its cursor.
func (s *Engine) Retemplate(ctx context.Context, algorithm string) (RetemplateStatus, error) {
	if algorithm == "" {
		return RetemplateStatus{}, invalid("algorithm is required")
	}
	fa, err := s.findAlgo(algorithm)
	if err != nil {
		return RetemplateStatus{}, err
	}
	j := &s.job
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running {
		if j.st.Algorithm == fa.alg.String() {
			return s.statusLocked(), nil
		}
		return s.statusLocked(), fmt.Errorf("%w: re-templating to %s is running (%d of %d subjects); one job at a time", ErrBusy, j.st.Algorithm, j.st.Done, j.st.Total)
	}
	if j.st == nil || j.st.Phase == PhaseDone || j.st.Algorithm != fa.alg.String() {
		total, err := s.store.Count()
		if err != nil {
			return RetemplateStatus{}, kindOf("retemplate", err)
		}
		j.st = &RetemplateStatus{Algorithm: fa.alg.String(), Phase: PhaseTemplating, Total: total, Started: time.Now().UTC()}
		if err := s.saveJob(nil); err != nil {
			return RetemplateStatus{}, err
		}
		s.log.Info().Str("algorithm", j.st.Algorithm).Int("subjects", total).Msg("re-templating started")
	}
	s.startLocked(fa)
	return s.statusLocked(), nil
}

// RetemplateStatus returns the re-templating job's status (State JobNone
// when no job has run on this gallery).
func (s *Engine) RetemplateStatus(ctx context.Context) (RetemplateStatus, error) {
	s.job.mu.Lock()
	defer s.job.mu.Unlock()
	return s.statusLocked(), nil
}

func (s *Engine) statusLocked() RetemplateStatus {
	j := &s.job
	if j.st == nil {
		return RetemplateStatus{State: JobNone}
	}
	st := *j.st
	st.Failures = append([]RetemplateFailure(nil), st.Failures...)
	st.NeedsReenrolment = append([]string(nil), st.NeedsReenrolment...)
	switch {
	case j.running:
		st.State = JobRunning
		if d := time.Since(j.runStart).Seconds(); d > 0 {
			st.Rate = float64(j.runDone) / d
		}
	case st.Phase == PhaseDone:
		st.State = JobDone
	default:
		st.State = JobStopped
	}
	return st
}

// saveJob writes the job's state alone, or, with sub, with a subject's new
// templates (SetTemplates) and returns it. The caller holds job.mu.
func (s *Engine) saveJob(sub *store.Subject) error {
	b, err := json.Marshal(s.job.st)
	if err != nil {
		return fmt.Errorf("%w: encoding the job's state: %w", ErrInternal, err)
	}
	if sub == nil {
		return kindOf("retemplate: saving the job's state", s.store.SetJobState(retemplateJob, b))
	}
	updated, err := s.store.SetTemplates(sub.ID, sub.Templates, &store.Job{Name: retemplateJob, State: b})
	if err != nil {
		return kindOf("retemplate", err)
	}
	*sub = updated
	return nil
}

// resumeJob, at start, reads the job's state and resumes an unfinished job.
func (s *Engine) resumeJob() error {
	b, err := s.store.JobState(retemplateJob)
	if err != nil {
		return fmt.Errorf("engine: reading the re-templating job: %w", err)
	}
	if b == nil {
		return nil
	}
	var st RetemplateStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("engine: the re-templating job's state: %w", err)
	}
	j := &s.job
	j.mu.Lock()
	defer j.mu.Unlock()
	j.st = &st
	if st.Phase == PhaseDone {
		return nil
	}
	fa, err := s.findAlgo(st.Algorithm)
	if err != nil {
		j.st.Error = fmt.Sprintf("not resumed: %v", err)
		s.log.Error().Str("algorithm", st.Algorithm).Err(err).Msg("unfinished re-templating job not resumed: load its algorithm")
		return nil
	}
	s.log.Info().Str("algorithm", st.Algorithm).Str("phase", st.Phase).Str("cursor", st.Cursor).
		Int("done", st.Done).Int("total", st.Total).Msg("re-templating resumed")
	s.startLocked(fa)
	return nil
}

// startLocked runs the job in the background. The caller holds job.mu.
func (s *Engine) startLocked(fa *faceAlgo) {
	j := &s.job
	j.st.Error = ""
	ctx, cancel := context.WithCancel(context.Background())
	j.running, j.cancel, j.done = true, cancel, make(chan struct{})
	j.runStart, j.runDone = time.Now(), 0
	done := j.done
	go func() {
		defer close(done)
		err := s.runJob(ctx, fa)
		j.mu.Lock()
		defer j.mu.Unlock()
		j.running = false
		switch {
		case err == nil:
			s.log.Info().Str("algorithm", j.st.Algorithm).Int("templated", j.st.Templated).Int("failed", j.st.Failed).
				Int("need_reenrol", j.st.NeedReenrol).Int("cleaned", j.st.Cleaned).Msg("re-templating done")
		case errors.Is(err, context.Canceled), errors.Is(err, errStopHook):
			j.st.Error = "stopped with the engine; resumes at the next start"
		default:
			j.st.Error = err.Error()
			s.log.Error().Err(err).Str("algorithm", j.st.Algorithm).Msg("re-templating stopped")
		}
	}()
}

// Close stops a running job (it resumes at the next start) and waits for
// it. The engine's other methods stay usable while the store is open.
func (s *Engine) Close() {
	j := &s.job
	j.mu.Lock()
	cancel, done := j.cancel, j.done
	j.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// jobBatch is how many subject ids the job reads at a time.
const jobBatch = 64

// runJob runs the phases from the stored cursor.
func (s *Engine) runJob(ctx context.Context, fa *faceAlgo) error {
	j := &s.job
	for {
		j.mu.Lock()
		phase, cursor := j.st.Phase, j.st.Cursor
		j.mu.Unlock()
		if phase == PhaseDone {
			return nil
		}
		ids, err := s.store.IDs(cursor, jobBatch)
		if err != nil {
			return kindOf("retemplate", err)
		}
		if len(ids) == 0 {
			j.mu.Lock()
			if j.st.Phase == PhaseTemplating {
				j.st.Phase = PhaseCleanup
			} else {
				j.st.Phase, j.st.Finished = PhaseDone, time.Now().UTC()
			}
			j.st.Cursor = ""
			j.st.Total = max(j.st.Total, j.st.Done)
			err := s.saveJob(nil)
			j.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return err
			}
			j.mu.Lock()
			stop := j.stopAfter > 0 && j.runDone >= j.stopAfter
			j.mu.Unlock()
			if stop {
				return errStopHook
			}
			if phase == PhaseTemplating {
				err = s.retemplateOne(ctx, id, fa)
			} else {
				err = s.cleanOne(id, fa)
			}
			if err != nil {
				return err
			}
		}
	}
}

// retemplateOne gives one subject templates of fa from its kept photos, or
// records why not, with the job's state, under the subject's lock.
func (s *Engine) retemplateOne(ctx context.Context, id string, fa *faceAlgo) error {
	unlock := s.lock(id)
	defer unlock()
	sub, err := s.store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return s.advance(id, nil, nil) // deleted meanwhile
	}
	if err != nil {
		return kindOf("retemplate", err)
	}
	var photos []store.Sample
	if sub.SampleCount > 0 {
		samples, err := s.store.Samples(id)
		if err != nil {
			return kindOf("retemplate", err)
		}
		for _, sm := range samples {
			if sm.Kind == store.SampleFacePhoto {
				photos = append(photos, sm)
			}
		}
	}
	hasFace := false
	for _, t := range sub.Templates {
		hasFace = hasFace || t.Modality == templates.ModalityFace
	}
	if len(photos) == 0 {
		if !hasFace {
			return s.advance(id, nil, nil) // fingers only: nothing to do
		}
		return s.advance(id, nil, func(st *RetemplateStatus) {
			st.NeedReenrol++
			if len(st.NeedsReenrolment) < maxListed {
				st.NeedsReenrolment = append(st.NeedsReenrolment, id)
			}
		})
	}
	var made []templates.Template
	for i, sm := range photos {
		x, err := s.extractWith(ctx, fa, sm.Data, false, fmt.Sprintf("photo %d", i+1))
		if err == nil {
			// Stored at unit norm, as Enroll stores faces.
			x.t, err = x.t.Normalised()
		}
		if err != nil {
			return s.advance(id, nil, func(st *RetemplateStatus) {
				st.Failed++
				if len(st.Failures) < maxListed {
					st.Failures = append(st.Failures, RetemplateFailure{SubjectID: id, Reason: err.Error()})
				}
			})
		}
		made = append(made, x.t)
	}
	var keep []templates.Template
	for _, t := range sub.Templates {
		if t.Modality != templates.ModalityFace || t.Algorithm != fa.alg {
			keep = append(keep, t)
		}
	}
	sub.Templates = append(keep, made...)
	if len(sub.Templates) > store.MaxTemplates {
		return s.advance(id, nil, func(st *RetemplateStatus) {
			st.Failed++
			if len(st.Failures) < maxListed {
				st.Failures = append(st.Failures, RetemplateFailure{SubjectID: id,
					Reason: fmt.Sprintf("%d templates with the new ones, at most %d", len(sub.Templates), store.MaxTemplates)})
			}
		})
	}
	if err := s.advance(id, &sub, func(st *RetemplateStatus) { st.Templated++ }); err != nil {
		return err
	}
	s.reindexFaces(sub, []*faceAlgo{fa})
	return nil
}

// cleanOne removes the other face algorithms' templates of a subject that
// has templates of fa.
func (s *Engine) cleanOne(id string, fa *faceAlgo) error {
	unlock := s.lock(id)
	defer unlock()
	sub, err := s.store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return s.advance(id, nil, nil)
	}
	if err != nil {
		return kindOf("retemplate", err)
	}
	has, others := false, false
	var keep []templates.Template
	var gone []*faceAlgo
	for _, t := range sub.Templates {
		switch {
		case t.Modality != templates.ModalityFace:
			keep = append(keep, t)
		case t.Algorithm == fa.alg:
			has = true
			keep = append(keep, t)
		default:
			others = true
			if o := s.algos.get(t.Algorithm); o != nil {
				gone = append(gone, o)
			}
		}
	}
	if !has || !others {
		return s.advance(id, nil, nil)
	}
	sub.Templates = keep
	if err := s.advance(id, &sub, func(st *RetemplateStatus) { st.Cleaned++ }); err != nil {
		return err
	}
	s.reindexFaces(sub, gone)
	return nil
}

// advance records a subject done: the cursor, the counts (change), and,
// with sub, its new templates in the same transaction.
func (s *Engine) advance(id string, sub *store.Subject, change func(*RetemplateStatus)) error {
	j := &s.job
	j.mu.Lock()
	defer j.mu.Unlock()
	prev := *j.st
	j.st.Cursor = id
	if j.st.Phase == PhaseTemplating {
		j.st.Done++
		j.runDone++
	}
	if change != nil {
		change(j.st)
	}
	if err := s.saveJob(sub); err != nil {
		*j.st = prev
		return err
	}
	return nil
}

// reindexFaces brings the face indexes of the algorithms changed in line
// with a subject's stored templates. The caller holds the subject's lock.
// An algorithm the subject gains is added before one it loses is removed,
// so that a search meanwhile finds the subject under one or the other.
func (s *Engine) reindexFaces(sub store.Subject, changed []*faceAlgo) {
	before := s.inFaceIndex(sub.ID)
	faces := 0
	byAlgo := map[*faceAlgo][]templates.Template{}
	for _, t := range sub.Templates {
		if t.Modality != templates.ModalityFace {
			continue
		}
		if fa := s.algos.get(t.Algorithm); fa != nil && fa.dim == len(t.Vector) {
			byAlgo[fa] = append(byAlgo[fa], t)
			faces++
		}
	}
	sort.SliceStable(changed, func(a, b int) bool { return len(byAlgo[changed[a]]) > len(byAlgo[changed[b]]) })
	for _, fa := range changed {
		fa.index.Remove(sub.ID)
		for _, t := range byAlgo[fa] {
			if err := fa.index.Add(matcher.Entry{SubjectID: sub.ID, Vector: t.Vector, Watchlists: sub.Watchlists}); err != nil {
				s.log.Error().Err(err).Str("subject", sub.ID).Msg("re-indexing a re-templated subject")
			}
		}
	}
	switch after := s.inFaceIndex(sub.ID); {
	case before && !after:
		s.faced.Add(-1)
	case !before && after:
		s.faced.Add(1)
	}
	s.subjectsMu.Lock()
	if info := s.fingered[sub.ID]; info != nil {
		info.faces = faces
	}
	s.subjectsMu.Unlock()
}
