package watchlist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
	// nist is the ANSI/NIST-ITL file of the subject, "" if none: a file
	// directly in DIR (the whole subject) or the one in its folder.
	nist string
	// failed, when not nil, is why the item cannot be imported (a
	// malformed transaction, two in one folder): a failure in the results
	// without a call.
	failed error
	// file: the item is a file in DIR rather than a folder.
	file bool
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
		Short: "Enrol every subject folder and ANSI/NIST-ITL file under DIR",
		Long: `import enrols one subject per folder of DIR. The folder name is the subject id
and name unless the folder holds a subject.json ({"id", "name", "watchlists",
"metadata"}); every JPEG or PNG in the folder is enrolled as one of its photos,
and every file named after a finger position (right-index.png, left-thumb.wsq,
right-middle.iso: an image or an ISO/ANSI minutiae record) as that finger.
Subjects that already exist are skipped, so an interrupted import can be rerun.

An ANSI/NIST-ITL transaction (*.an2, *.an2k, *.eft, *.nist) directly in DIR is
one subject: its id is the transaction's Type-2 reference (INT-I 2.007 SCN,
EBTS 2.009 OCA), else its TCN (1.009), else the file name without extension;
its name and metadata are what the server reads from Type-2. A subject folder
may hold one such file, enrolled with the folder's photos and fingers (the name
then comes from its Type-2 unless subject.json gives one). A malformed file is
a failure naming the record, field and byte; the others are still imported.

Every folder is enrolled, reported as already enrolled, or reported as FAILED
with the reason: a malformed subject.json, or nothing to enrol in it (exit 1
when any failed). Folders whose name begins with a dot are not subjects.`,
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
						err := it.failed
						if err == nil {
							err = a.importOne(cmd.Context(), it, dpi)
						}
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
				fmt.Fprintf(a.stdout, "Imported %d, already enrolled %d, failed %d (of %s).\n",
					counts["imported"], counts["exists"], counts["failed"], itemsText(items))
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

// importOne enrols one item, reading its transaction again (scanImport
// checked it but does not keep every file's bytes).
func (a *app) importOne(ctx context.Context, it importItem, dpi int32) error {
	e := enrolment{id: it.sub.ID, name: it.sub.Name, lists: it.sub.Watchlists, meta: it.sub.Metadata, photos: it.photos, fingers: it.fingers, dpi: dpi}
	if it.nist != "" {
		nf, err := readNIST(it.nist)
		if err != nil {
			return err
		}
		e.nist = nf
	}
	_, err := a.enroll(ctx, e)
	return err
}

// itemsText is "3 folders", "2 ANSI/NIST files" or "3 folders and 2
// ANSI/NIST files".
func itemsText(items []importItem) string {
	folders, files := 0, 0
	for _, it := range items {
		if it.file {
			files++
		} else {
			folders++
		}
	}
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	switch {
	case files == 0:
		return plural(folders, "folder", "folders")
	case folders == 0:
		return plural(files, "ANSI/NIST file", "ANSI/NIST files")
	}
	return plural(folders, "folder", "folders") + " and " + plural(files, "ANSI/NIST file", "ANSI/NIST files")
}

func isAlreadyExists(err error) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.rpc == codes.AlreadyExists
}

// scanImport reads DIR's subject folders and ANSI/NIST-ITL files in name
// order.
func scanImport(dir string, lists []string) ([]importItem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: %v", err)}
	}
	var items []importItem
	for _, e := range entries {
		if !e.IsDir() {
			if isNISTFile(e.Name()) {
				items = append(items, nistItem(filepath.Join(dir, e.Name()), lists))
			}
			continue
		}
		if strings.HasPrefix(e.Name(), ".") {
			continue // .git, .Trash: not subjects
		}
		items = append(items, folderItem(filepath.Join(dir, e.Name()), lists))
	}
	if len(items) == 0 {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("import: no subject folders and no ANSI/NIST-ITL files in %s", dir)}
	}
	return items, nil
}

// folderItem is the subject of a folder of DIR. A folder that cannot be
// enrolled (a malformed subject.json, no sample) is a failure under its
// name rather than a stop of the whole import or a folder left out
// unsaid: every folder is enrolled, found already there, or named.
func folderItem(sd string, lists []string) importItem {
	name := filepath.Base(sd)
	it := importItem{dir: sd, sub: subjectFile{ID: name, Name: name, Watchlists: lists}}
	fail := func(err error) importItem {
		it.failed = &exitError{code: ExitBadInput, err: err}
		return it
	}
	nameFromFolder := true
	sj := filepath.Join(sd, "subject.json")
	if b, err := os.ReadFile(sj); err == nil {
		var sub subjectFile
		if err := json.Unmarshal(b, &sub); err != nil {
			return fail(fmt.Errorf("%s: %v", sj, err))
		}
		if sub.ID == "" {
			sub.ID = name
		}
		if sub.Name == "" {
			sub.Name = name
		} else {
			nameFromFolder = false
		}
		if len(sub.Watchlists) == 0 {
			sub.Watchlists = lists
		}
		it.sub = sub
	} else if !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	files, err := os.ReadDir(sd)
	if err != nil {
		return fail(err)
	}
	var nists []string // ANSI/NIST-ITL files in the folder
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		if pos, ok := fingerFile(f.Name()); ok {
			it.fingers = append(it.fingers, fingerArg{pos, filepath.Join(sd, f.Name())})
		} else if isPhoto(f.Name()) {
			it.photos = append(it.photos, filepath.Join(sd, f.Name()))
		} else if isNISTFile(f.Name()) {
			nists = append(nists, f.Name())
		}
	}
	sort.Strings(it.photos) // fingers come in name order from ReadDir
	switch {
	case len(nists) > 1:
		return fail(fmt.Errorf("%s holds %d ANSI/NIST-ITL files (%s): one per subject folder", sd, len(nists), strings.Join(nists, ", ")))
	case len(nists) == 1:
		it.nist = filepath.Join(sd, nists[0])
		nf, err := readNIST(it.nist)
		if err != nil {
			it.failed = err
		} else if nameFromFolder && nf.hasName() {
			it.sub.Name = "" // the server takes Type-2's
		}
	case len(it.photos)+len(it.fingers) == 0:
		return fail(fmt.Errorf("%s: nothing to enrol: no photo (.jpg, .jpeg, .png), no fingerprint file named after its position (right-index.png) and no ANSI/NIST-ITL file", sd))
	}
	return it
}

// nistItem is a subject of an ANSI/NIST-ITL file directly in DIR: its id
// the transaction's (Type-2 reference, then TCN), else the file name
// without extension; its name left to the server (Type-2). A file that
// does not parse is a failure in the results, under that file name.
func nistItem(path string, lists []string) importItem {
	base := filepath.Base(path)
	it := importItem{dir: path, file: true, nist: path, sub: subjectFile{ID: strings.TrimSuffix(base, filepath.Ext(base)), Watchlists: lists}}
	nf, err := readNIST(path)
	if err != nil {
		it.failed = err
		return it
	}
	if id := nf.defaultID(); id != "" {
		it.sub.ID = id
	}
	return it
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
