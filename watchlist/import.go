package watchlist

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
)

// subjectFile is the optional subject.json in an import folder.
type subjectFile struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Watchlists []string          `json:"watchlists"`
	Metadata   map[string]string `json:"metadata"`
}

type importItem struct {
	dir     string
	sub     subjectFile
	photos  []string
	fingers []fingerArg
}

type importResult struct {
	ID     string `json:"id"`
	Status string `json:"status"` // imported, exists, failed
	Error  string `json:"error,omitempty"`
}

func (a *app) importCmd() *cobra.Command {
	var (
		lists   []string
		workers int
		dpi     int32
	)
	cmd := &cobra.Command{
		Use:   "import DIR",
		Short: "Enrol every subject folder under DIR",
		Long: `import enrols one subject per folder of DIR. The folder name is the subject id
and name unless the folder holds a subject.json ({"id", "name", "watchlists",
"metadata"}); every JPEG or PNG in the folder is enrolled as one of its photos,
and every file named after a finger position (right-index.png, left-thumb.wsq,
right-middle.iso: an image or an ISO/ANSI minutiae record) as that finger.
Subjects that already exist are skipped, so an interrupted import can be rerun.`,
		Example: `  watchlist import ./wanted --list interpol`,
		Args:    exactArgs(1, "import needs one directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			items, err := scanImport(args[0], lists)
			if err != nil {
				return err
			}
			if _, err := a.dial(); err != nil {
				return err
			}
			if workers < 1 {
				workers = 1
			}
			// The bar redraws in place: on a pipe or a log file it would only
			// add noise, so it shows on a terminal alone.
			barOut := io.Discard
			if isTerminal(a.stderr) {
				barOut = a.stderr
			}
			bar := progressbar.NewOptions(len(items),
				progressbar.OptionSetWriter(barOut),
				progressbar.OptionSetDescription("importing"),
				progressbar.OptionShowCount(),
				progressbar.OptionClearOnFinish())
			results := make([]importResult, len(items))
			var (
				wg   sync.WaitGroup
				next = make(chan int)
			)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						it := items[i]
						r := importResult{ID: it.sub.ID, Status: "imported"}
						_, err := a.enroll(cmd.Context(), it.sub.ID, it.sub.Name, it.sub.Watchlists, it.sub.Metadata, it.photos, it.fingers, dpi)
						switch {
						case err == nil:
						case isAlreadyExists(err):
							r.Status = "exists"
						default:
							r.Status, r.Error = "failed", err.Error()
						}
						results[i] = r
						bar.Add(1)
					}
				}()
			}
			for i := range items {
				next <- i
			}
			close(next)
			wg.Wait()
			bar.Finish()

			counts := map[string]int{}
			for _, r := range results {
				counts[r.Status]++
			}
			if a.json {
				if err := a.printJSON(map[string]any{"results": results, "imported": counts["imported"], "exists": counts["exists"], "failed": counts["failed"]}); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.Status == "failed" {
						fmt.Fprintf(a.stdout, "FAILED %s: %s\n", r.ID, r.Error)
					}
				}
				fmt.Fprintf(a.stdout, "Imported %d, already enrolled %d, failed %d (of %d folders).\n",
					counts["imported"], counts["exists"], counts["failed"], len(items))
			}
			if counts["failed"] > 0 {
				return &exitError{code: ExitFailure, err: fmt.Errorf("import: %d of %d subjects failed", counts["failed"], len(items))}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&lists, "list", nil, "watchlist(s) for subjects whose subject.json names none")
	cmd.Flags().IntVar(&workers, "workers", 2, "enrolments in flight at once")
	cmd.Flags().Int32Var(&dpi, "dpi", 0, "resolution of the fingerprint images (default: what each file says, else 500)")
	return cmd
}

func isAlreadyExists(err error) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.rpc == codes.AlreadyExists
}

// scanImport reads DIR's subject folders in name order.
func scanImport(dir string, lists []string) ([]importItem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: %v", err)}
	}
	var items []importItem
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sd := filepath.Join(dir, e.Name())
		it := importItem{dir: sd, sub: subjectFile{ID: e.Name(), Name: e.Name()}}
		if b, err := os.ReadFile(filepath.Join(sd, "subject.json")); err == nil {
			if err := json.Unmarshal(b, &it.sub); err != nil {
				return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: %s: %v", filepath.Join(sd, "subject.json"), err)}
			}
			if it.sub.ID == "" {
				it.sub.ID = e.Name()
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: %v", err)}
		}
		if len(it.sub.Watchlists) == 0 {
			it.sub.Watchlists = lists
		}
		files, err := os.ReadDir(sd)
		if err != nil {
			return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: %v", err)}
		}
		for _, f := range files {
			if f.IsDir() {
				continue
			}
			if pos, ok := fingerFile(f.Name()); ok {
				it.fingers = append(it.fingers, fingerArg{pos, filepath.Join(sd, f.Name())})
			} else if isPhoto(f.Name()) {
				it.photos = append(it.photos, filepath.Join(sd, f.Name()))
			}
		}
		sort.Strings(it.photos) // fingers come in name order from ReadDir
		if len(it.photos)+len(it.fingers) == 0 {
			continue
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: no subject folders with photos or fingerprints in %s", dir)}
	}
	return items, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
