package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// The kinds of error the engine returns. Every error of the engine wraps
// exactly one of them (errors.Is), so that a service in front of it (the
// gRPC server) can turn a kind into its own status in one place, and a
// failing disk is never reported as the caller's mistake.
var (
	// ErrInvalid: the request is malformed or its sample unusable; the
	// caller should change it.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: a subject the request names does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the subject to create exists already.
	ErrExists = errors.New("already exists")
	// ErrIncompatible: a template or subject cannot be compared by this
	// engine (another algorithm or version); re-enrolment fixes it.
	ErrIncompatible = errors.New("incompatible")
	// ErrUnavailable: the gallery cannot be read or written now (a failing
	// disk, a closed store); the request may succeed later.
	ErrUnavailable = errors.New("unavailable")
	// ErrResourceExhausted: the request is larger than the engine takes.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrInternal: a bug or broken invariant.
	ErrInternal = errors.New("internal error")
	// ErrBusy: another operation is under way that this one cannot run
	// beside (a re-templating job of another algorithm); retry once it is
	// done.
	ErrBusy = errors.New("busy")
)

// ErrAlreadyApplied marks a log message applied again (ApplyEnroll,
// ApplyDelete, SkipApplied): the replica has applied its position already
// and nothing was changed. It is not a kind of its own: such an error is of
// kind ErrExists (the change is in already) and wraps this too, so an apply
// loop tells it from a refusal with errors.Is(err, ErrAlreadyApplied)
// before anything else, and acknowledges the message.
var ErrAlreadyApplied = store.ErrAlreadyApplied

// Kinds lists the kinds, for the mapping's exhaustiveness test.
var Kinds = []error{ErrInvalid, ErrNotFound, ErrExists, ErrIncompatible, ErrUnavailable, ErrResourceExhausted, ErrInternal, ErrBusy}

// invalid returns an ErrInvalid error.
func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// kindOf returns err wrapped with its kind, classifying the errors of the
// layers below: the sample errors of templates and their extractors, the
// store's, the matcher's and the context's. what prefixes the message.
// An error that already carries a kind keeps it.
func kindOf(what string, err error) error {
	if err == nil {
		return nil
	}
	for _, k := range Kinds {
		if errors.Is(err, k) {
			return prefix(what, err)
		}
	}
	var kind error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err // the service maps these from the context itself
	case errors.Is(err, templates.ErrImageTooLarge):
		kind = ErrResourceExhausted
	case errors.Is(err, templates.ErrNoFace), errors.Is(err, templates.ErrMultipleFaces),
		errors.Is(err, templates.ErrImageUnreadable), errors.Is(err, templates.ErrUnsupportedFormat),
		errors.Is(err, templates.ErrCorrupt), errors.Is(err, templates.ErrInvalidTemplate), errors.Is(err, fpimage.ErrUnsupportedImage),
		errors.Is(err, finger.ErrLowQuality), errors.Is(err, finger.ErrTooSmall), errors.Is(err, finger.ErrNoFingerprint),
		errors.Is(err, minutiae.ErrFormat), errors.Is(err, minutiae.ErrTruncated), errors.Is(err, minutiae.ErrUnsupportedVersion),
		errors.Is(err, minutiae.ErrUnrepresentable), errors.Is(err, store.ErrBadBackup),
		errors.Is(err, matcher.ErrDimension), errors.Is(err, matcher.ErrBadVector), errors.Is(err, matcher.ErrEmptyID):
		kind = ErrInvalid
	case errors.Is(err, templates.ErrIncompatible):
		kind = ErrIncompatible
	case errors.Is(err, store.ErrNotFound):
		kind = ErrNotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrAlreadyApplied):
		kind = ErrExists
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrInvalidPageToken):
		kind = ErrInvalid
	case errors.Is(err, store.ErrClosed):
		kind = ErrUnavailable
	case errors.As(err, new(*matcher.PanicError)):
		kind = ErrInternal // a bug, not the disk
	default:
		// An unclassified error of the store or the disk under it: the
		// gallery could not be read or written.
		kind = ErrUnavailable
	}
	return prefix(what, fmt.Errorf("%w: %w", kind, err))
}

func prefix(what string, err error) error {
	if what == "" {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
