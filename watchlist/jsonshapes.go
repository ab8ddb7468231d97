package watchlist

import (
	"encoding/json"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// candidateJSON is the stable JSON shape of `search --json`. Score is the
// score the candidate was decided on: the face cosine for a photo alone,
// else fused_score.
type candidateJSON struct {
	Rank       int32    `json:"rank"`
	SubjectID  string   `json:"subject_id"`
	Name       string   `json:"name"`
	Score      float32  `json:"score"`
	Watchlists []string `json:"watchlists"`
	FaceScore  *float32 `json:"face_score,omitempty"`
	FaceFMR    *float64 `json:"face_fmr,omitempty"`
	// FaceAlgorithm made face_score (a gallery moving between face
	// algorithms compares under each).
	FaceAlgorithm string            `json:"face_algorithm,omitempty"`
	FingerScore   *float32          `json:"finger_score,omitempty"`
	Fingers       []fingerScoreJSON `json:"fingers,omitempty"`
	FusedScore    float64           `json:"fused_score"`
	FusedFMR      float64           `json:"fused_fmr"`
	// DecisionFMR is the FMR the server decided this candidate at (the
	// face FMR under a cosine rule, the fused FMR under max_fmr).
	DecisionFMR float64 `json:"decision_fmr,omitempty"`
}

type fingerScoreJSON struct {
	Position string  `json:"position"`
	Score    float32 `json:"score"`
	FMR      float64 `json:"fmr"`
	Compared bool    `json:"compared"`
}

type searchJSON struct {
	Candidates []candidateJSON `json:"candidates"`
	Threshold  float32         `json:"threshold"`
	Searched   int64           `json:"searched"`
	// Fused: the decision was fused_fmr <= max_fmr (a search with fingers,
	// or with --max-fmr).
	Fused          bool    `json:"fused"`
	MaxFMR         float64 `json:"max_fmr,omitempty"`
	FusedThreshold float64 `json:"fused_threshold,omitempty"`
	// Rule is the server's statement of the decision (issue 18).
	Rule string `json:"rule,omitempty"`
	// NIST: what the server took from --nist's transaction.
	NIST *nistUseJSON `json:"nist,omitempty"`
}

func toCandidateJSON(c *pb.Candidate) candidateJSON {
	j := candidateJSON{
		Rank: c.GetRank(), SubjectID: c.GetSubjectId(), Name: c.GetName(), Score: c.GetScore(),
		Watchlists: nonNil(c.GetWatchlists()), FaceScore: c.FaceScore, FaceFMR: c.FaceFmr, FaceAlgorithm: c.GetFaceAlgorithm(),
		FingerScore: c.FingerScore, FusedScore: c.GetFusedScore(), FusedFMR: c.GetFusedFmr(), DecisionFMR: c.GetDecisionFmr(),
	}
	for _, f := range c.GetFingerScores() {
		j.Fingers = append(j.Fingers, fingerScoreJSON{positionName(f.GetPosition()), f.GetScore(), f.GetFmr(), f.GetCompared()})
	}
	return j
}

// subjectJSON is the JSON shape of a subject in show, list, add and remove.
type subjectJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Watchlists []string          `json:"watchlists"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Templates  int               `json:"templates,omitempty"`
	// Samples kept for re-templating (show only).
	Samples int    `json:"samples,omitempty"`
	Created string `json:"created,omitempty"`
	Updated string `json:"updated,omitempty"`
}

func toSubjectJSON(s *pb.Subject) subjectJSON {
	j := subjectJSON{ID: s.GetId(), Name: s.GetName(), Watchlists: nonNil(s.GetWatchlists()), Metadata: s.GetMetadata(), Templates: len(s.GetTemplates()), Samples: int(s.GetSampleCount())}
	if s.GetCreatedAt() != nil {
		j.Created = s.GetCreatedAt().AsTime().UTC().Format("2006-01-02T15:04:05Z")
	}
	if s.GetUpdatedAt() != nil {
		j.Updated = s.GetUpdatedAt().AsTime().UTC().Format("2006-01-02T15:04:05Z")
	}
	return j
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
