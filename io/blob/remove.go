package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

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

// RemoveDaysBefore deletes the day directories dt=YYYY-MM-DD directly under
// prefix (a directory, ending in "/") whose day is before the day before,
// with everything in them, and returns how many files it deleted.
// Entries that are not day directories are left alone. It is retention:
// a run that no longer needs old days drops them, and running it again
// deletes nothing more.
func RemoveDaysBefore(ctx context.Context, prefix string, before time.Time) (int, error) {
	dirs, err := ListDirs(ctx, prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dirs {
		name := path.Base(strings.TrimSuffix(d, "/"))
		day, err := time.Parse("dt=2006-01-02", name)
		if err != nil || !day.Before(before) {
			continue
		}
		dir := strings.TrimSuffix(prefix, "/") + "/" + name
		files, err := ListPrefix(ctx, dir+"/")
		if err != nil {
			return n, err
		}
		if IsLocal(dir) { // the directory and all in it, hidden files too
			if err := os.RemoveAll(dir); err != nil {
				return n, err
			}
			n += len(files)
			continue
		}
		for _, f := range files { // object stores have no directories to leave behind
			if err := Remove(ctx, f.Path); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
