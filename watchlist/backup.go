package watchlist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// adminCtx bounds a backup or restore: they stream the whole gallery, so
// they get no deadline unless --timeout is given.
func (a *app) adminCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	if f := cmd.Flags().Lookup("timeout"); f != nil && f.Changed {
		return a.ctx(cmd.Context())
	}
	return context.WithCancel(cmd.Context())
}

func (a *app) admin() (pb.AdminClient, error) {
	if _, err := a.dial(); err != nil {
		return nil, err
	}
	return pb.NewAdminClient(a.conn), nil
}

func (a *app) backupCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent backup of the gallery to FILE (admin)",
		Long: `backup streams one consistent snapshot of the gallery from matchd into FILE
while searches and enrolments go on. FILE holds biometric data in the clear:
it is written with mode 0600; keep it encrypted and access controlled.
An existing FILE is kept (exit 4) unless --force; then it is replaced only
when the backup is complete.`,
		Args: exactArgs(1, "backup needs the FILE to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			// Before the call: a backup can take minutes, and the file in
			// the way is likely the last good backup.
			if _, err := os.Lstat(path); err == nil && !force {
				return backupExists(path)
			}
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.adminCtx(cmd)
			defer cancel()
			tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
			if err != nil {
				return &exitError{code: ExitBadInput, err: err}
			}
			defer os.Remove(tmp.Name()) // after the rename, a no-op
			if err := tmp.Chmod(0o600); err != nil {
				tmp.Close()
				return &exitError{code: ExitFailure, err: err}
			}
			stream, err := c.Backup(ctx, &pb.BackupRequest{})
			if err != nil {
				tmp.Close()
				return a.callError(err, "backup")
			}
			var n int64
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					tmp.Close()
					return a.callError(err, "backup")
				}
				k, err := tmp.Write(m.GetData())
				n += int64(k)
				if err != nil {
					tmp.Close()
					return &exitError{code: ExitFailure, err: fmt.Errorf("writing %s: %w", path, err)}
				}
			}
			if err := tmp.Sync(); err != nil {
				tmp.Close()
				return &exitError{code: ExitFailure, err: err}
			}
			if err := tmp.Close(); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			if err := place(tmp.Name(), path, force); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"file": path, "bytes": n})
			}
			fmt.Fprintf(a.stdout, "Backed up the gallery to %s (%d bytes).\n", path, n)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing FILE")
	return cmd
}

func backupExists(path string) error {
	return &exitError{code: ExitBadInput, err: fmt.Errorf("backup: %s exists (--force to replace it)", path)}
}

// place moves the finished backup tmp to path. Without force a hard link
// puts it there only if path is still free (a file may have appeared
// during the backup); where links are not supported, a last check and a
// rename.
func place(tmp, path string, force bool) error {
	if !force {
		err := os.Link(tmp, path)
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrExist) {
			return backupExists(path)
		}
		if _, err := os.Lstat(path); err == nil {
			return backupExists(path)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return &exitError{code: ExitFailure, err: err}
	}
	return nil
}

func (a *app) restoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup FILE into matchd's empty gallery (admin)",
		Long: `restore sends a backup written by 'watchlist backup' to matchd, which loads it
into its gallery if the gallery has no subjects, all or nothing: a corrupt or
truncated file is refused and nothing is stored. Searches see the restored
subjects when the command returns.`,
		Args: exactArgs(1, "restore needs the backup FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{code: ExitBadInput, err: err}
			}
			defer f.Close()
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.adminCtx(cmd)
			defer cancel()
			stream, err := c.Restore(ctx)
			if err != nil {
				return a.callError(err, "restore")
			}
			buf := make([]byte, 1<<20)
			for {
				n, rerr := f.Read(buf)
				if n > 0 {
					// Send fails with io.EOF when the server has ended the
					// call; CloseAndRecv then says why.
					if err := stream.Send(&pb.RestoreChunk{Data: buf[:n]}); err != nil {
						break
					}
				}
				if errors.Is(rerr, io.EOF) {
					break
				}
				if rerr != nil {
					return &exitError{code: ExitBadInput, err: fmt.Errorf("reading %s: %w", args[0], rerr)}
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				return a.callError(err, args[0])
			}
			if a.json {
				return a.printJSON(map[string]any{"subjects": resp.GetSubjects(), "templates": resp.GetTemplates(), "bytes": resp.GetBytes()})
			}
			fmt.Fprintf(a.stdout, "Restored %d subject(s) with %d template(s) from %s.\n", resp.GetSubjects(), resp.GetTemplates(), args[0])
			return nil
		},
	}
}
