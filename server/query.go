package server

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/store"
)

// maxQueryWatchlists bounds the watchlists one identification names.
const maxQueryWatchlists = 64

// validQuery checks what an identification asks besides its probe — top_k
// (0: DefaultTopK), a threshold (a face cosine) or max_fmr, the watchlists
// to search — before any extraction is paid for, and returns it as an
// identifyQuery. Its errors are InvalidArgument statuses naming the field.
// Identify, CaptureAndIdentify and IdentifyFrames share it.
func validQuery(topK int32, threshold *float32, maxFMR *float64, watchlists []string) (identifyQuery, error) {
	k := int(topK)
	switch {
	case k == 0:
		k = DefaultTopK
	case k < 0 || k > MaxTopK:
		return identifyQuery{}, status.Errorf(codes.InvalidArgument, "top_k %d outside 1..%d", topK, MaxTopK)
	}
	if err := validThreshold(threshold, maxFMR); err != nil {
		return identifyQuery{}, err
	}
	if threshold != nil && maxFMR != nil {
		return identifyQuery{}, status.Error(codes.InvalidArgument, "give threshold (a face cosine) or max_fmr, not both")
	}
	if len(watchlists) > maxQueryWatchlists {
		return identifyQuery{}, status.Errorf(codes.InvalidArgument, "watchlists: %d named, at most %d", len(watchlists), maxQueryWatchlists)
	}
	for _, w := range watchlists {
		if err := validWatchlistName(w); err != nil {
			return identifyQuery{}, err
		}
	}
	return identifyQuery{k: k, watchlists: watchlists, threshold: threshold, maxFMR: maxFMR}, nil
}

// validWatchlistName checks a watchlist name as the store does for
// enrolments: a name the store refuses can match no subject.
func validWatchlistName(w string) error {
	if len(w) == 0 || len(w) > store.MaxWatchlistName {
		return status.Errorf(codes.InvalidArgument, "watchlists: a name must be 1..%d bytes, got %q", store.MaxWatchlistName, w)
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return status.Errorf(codes.InvalidArgument, "watchlists: %q: byte %d (%q) is not one of [A-Za-z0-9._-]", w, i, c)
		}
	}
	return nil
}
