package server

// matchd check and matchd salvage: offline, on a stopped matchd's data
// directory (issue 19). check verifies every file, value, subject and the
// audit chain and exits non-zero on any damage; salvage copies every whole
// subject of a damaged gallery into a new data directory through the
// backup format and lists what it lost.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
)

// errDamaged is check's failure: the findings are on stdout.
var errDamaged = errors.New("check: the gallery is damaged (see above); `matchd salvage` copies what is readable into a new data directory")

func (c *cli) checkCmd() *cobra.Command {
	var data, keyFile string
	cmd := &cobra.Command{
		Use:   "check --data DIR [--encryption-key-file FILE]",
		Short: "Verify a stopped matchd's gallery: every table and log, every subject, the audit chain",
		Long: `check reads a stopped matchd's gallery whole, offline: every table with its
block and index checksums, every value and write-ahead log, every value,
every subject's record, templates and kept samples, and the audit chain (as
watchlist audit verify does). It lists what is damaged and exits 1 if
anything is, 0 if everything reads.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return checkData(c.stdout, data, keyFile)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&data, "data", DefaultOptions().DataDir, "matchd's data `dir`ectory")
	f.StringVar(&keyFile, "encryption-key-file", "", "the gallery's master key `file`")
	documentEnv(f, map[string]string{"encryption-key-file": "$" + engine.EncryptionKeyEnv + ", else DATA/master.key"})
	return cmd
}

// existingGallery is the store options of data's gallery, which must exist:
// an offline command never creates one (nor a master key).
func existingGallery(data, keyFile string) (store.Options, error) {
	_, err1 := os.Stat(filepath.Join(data, engine.GalleryDirName))
	_, err2 := os.Stat(filepath.Join(data, "MANIFEST"))
	if err1 != nil && err2 != nil {
		return store.Options{}, fmt.Errorf("no gallery in %s: %w", data, err1)
	}
	opt, _, err := engine.GalleryOptions(data, keyFile, zerolog.Nop())
	return opt, err
}

func checkData(w io.Writer, data, keyFile string) error {
	sopt, err := existingGallery(data, keyFile)
	if err != nil {
		return err
	}
	bad, err := store.CheckFiles(sopt)
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(w, "DAMAGED %s: %v\n", b.File, b.Err)
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "%d damaged files: the gallery does not open; subjects, values and the audit chain not checked\n", len(bad))
		return errDamaged
	}
	fmt.Fprintf(w, "files: every table and log of %s reads\n", sopt.Dir)
	st, err := store.Open(sopt)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.Check()
	if err != nil {
		return err
	}
	for _, d := range rep.Damage.Subjects {
		fmt.Fprintf(w, "DAMAGED subject %q: %v\n", d.ID, d.Err)
	}
	for _, v := range rep.Values {
		fmt.Fprintf(w, "DAMAGED value of %q: %v\n", v.Key, v.Err)
	}
	fmt.Fprintf(w, "subjects: %d whole, %d damaged\n", rep.Subjects, len(rep.Damage.Subjects))
	al, err := audit.Open(st.AuditTrail(), audit.Options{ArchiveDir: filepath.Join(data, "audit")})
	if err != nil {
		return err
	}
	defer al.Close()
	res, err := al.Verify()
	if err != nil {
		return err
	}
	if res.OK {
		fmt.Fprintf(w, "audit chain: %d records verified, head %d %s\n", res.Records, res.HeadSeq, res.HeadHash)
	} else {
		fmt.Fprintf(w, "DAMAGED audit chain at record %d: %s\n", res.BadSeq, res.Problem)
	}
	if !rep.OK() || !res.OK {
		return errDamaged
	}
	fmt.Fprintln(w, "check passed")
	return nil
}

func (c *cli) salvageCmd() *cobra.Command {
	var data, out, keyFile string
	cmd := &cobra.Command{
		Use:   "salvage --data DIR --out NEWDIR [--encryption-key-file FILE]",
		Short: "Copy what is readable of a stopped matchd's damaged gallery into a new data directory",
		Long: `salvage reads a stopped matchd's damaged gallery, skipping the damaged
tables (of which it reads every block that passes its checksum), and
restores every whole subject into a new data directory through the backup
format, listing what it lost: the damaged files, the key ranges of the
blocks that did not read, and every subject found in pieces. The damaged
directory is not written. The new one gets the old one's TLS files, master
key and other files, but not its audit trail, which stays in DIR (matchd
check verifies it): the new gallery starts a new chain.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr{errors.New("salvage needs --out, a new data directory")}
			}
			return salvageData(c.stdout, data, out, keyFile)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&data, "data", DefaultOptions().DataDir, "the damaged data `dir`ectory (matchd stopped)")
	f.StringVar(&out, "out", "", "the new data `dir`ectory (must not exist or be empty)")
	f.StringVar(&keyFile, "encryption-key-file", "", "the gallery's master key `file` (also the new gallery's)")
	documentEnv(f, map[string]string{"encryption-key-file": "$" + engine.EncryptionKeyEnv + ", else DATA/master.key"})
	return cmd
}

func salvageData(w io.Writer, data, out, keyFile string) (err error) {
	sopt, err := existingGallery(data, keyFile)
	if err != nil {
		return err
	}
	if sopt.Dir == data {
		return fmt.Errorf("salvage: %s is a gallery from before encryption at rest; salvage reads DATA/%s galleries only", data, engine.GalleryDirName)
	}
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return fmt.Errorf("salvage: --out %s is not empty", out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("salvage: --out: %w", err)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	// The backup holds the gallery in the clear: it lives only in the new
	// directory, only until restored.
	tmp, err := os.CreateTemp(out, ".salvage-*.bmbackup")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	rep, err := store.Salvage(sopt, tmp)
	if err != nil {
		return fmt.Errorf("salvage: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := copyDataDir(data, out); err != nil {
		return fmt.Errorf("salvage: %w", err)
	}
	nopt, _, err := engine.GalleryOptions(out, keyFile, zerolog.Nop())
	if err != nil {
		return err
	}
	nst, err := store.Open(nopt)
	if err != nil {
		return err
	}
	st, err := nst.Restore(tmp)
	if cerr := nst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("salvage: restoring into %s: %w", nopt.Dir, err)
	}
	for _, f := range rep.Damage.Files {
		fmt.Fprintf(w, "DAMAGED %s: %v\n", f.File, f.Err)
	}
	for _, r := range rep.LostRanges {
		fmt.Fprintf(w, "LOST keys: %s\n", r)
	}
	for _, d := range rep.Damage.Subjects {
		fmt.Fprintf(w, "LOST subject %q: %v\n", d.ID, d.Err)
	}
	for _, id := range rep.SamplesDropped {
		fmt.Fprintf(w, "LOST the kept samples of subject %q (its templates are salvaged)\n", id)
	}
	fmt.Fprintf(w, "salvaged %d subjects (%d templates, %d kept samples; %d entries read back from damaged tables) into %s; %d subjects named lost\n",
		st.Subjects, st.Templates, st.Samples, rep.Recovered, out, len(rep.Damage.Subjects))
	fmt.Fprintf(w, "the audit trail stays in %s (matchd check verifies it); %s starts a new chain\n", data, out)
	return nil
}

// copyDataDir copies data's files but the gallery and the audit archive
// into out: the TLS files, the master key, the federation secret.
func copyDataDir(data, out string) error {
	return filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, path)
		switch {
		case rel == ".":
			return nil
		case rel == engine.GalleryDirName || rel == "audit":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(out, rel), 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, rel), b, info.Mode().Perm())
	})
}
