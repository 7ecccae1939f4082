package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
)

// Remove deletes one file on any Beam filesystem that can delete (local
// disks, and S3 through io/s3fs with one DeleteObject). A file that is
// already gone is not an error, so a retried cleanup is harmless.
func Remove(ctx context.Context, path string) error {
	if IsLocal(path) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	fsys, err := fileSystem(ctx, path)
	if err != nil {
		return err
	}
	rm, ok := fsys.(filesystem.Remover)
	if !ok {
		return fmt.Errorf("blob: cannot delete %s: its filesystem has no Remove", path)
	}
	if err := rm.Remove(ctx, path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
