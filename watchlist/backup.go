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
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent backup of the gallery to FILE (admin)",
		Long: `backup streams one consistent snapshot of the gallery from matchd into FILE
while searches and enrolments go on. FILE holds biometric data in the clear:
it is written with mode 0600; keep it encrypted and access controlled.
An existing FILE is replaced only when the backup is complete.`,
		Args: exactArgs(1, "backup needs the FILE to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.adminCtx(cmd)
			defer cancel()
			path := args[0]
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
			if err := os.Rename(tmp.Name(), path); err != nil {
				return &exitError{code: ExitFailure, err: err}
			}
			if a.json {
				return a.printJSON(map[string]any{"file": path, "bytes": n})
			}
			fmt.Fprintf(a.stdout, "Backed up the gallery to %s (%d bytes).\n", path, n)
			return nil
		},
	}
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
