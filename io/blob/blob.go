// Package blob reads, lists and writes files through Beam's filesystems,
// with what lumen needs beyond filesystem.Interface: ranged reads, listing a
// prefix with sizes in one paginated request, directory listing, atomic
// creation (a file appears whole or not at all) and removal. The local
// filesystem is handled directly; a filesystem implementing the optional
// interfaces below (io/s3fs does) gets its fast paths; any other Beam
// filesystem gets portable fallbacks.
//
// It knows nothing about Avro or lumen's layouts: io/avroio, io/raw and
// io/deadletter build on it.
package blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	// The local filesystem is always available.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
)

// Optional capabilities a Beam filesystem may have beyond
// filesystem.Interface. lumen's S3 filesystem (io/s3fs) has all four; the
// local one is handled directly; any other filesystem gets the portable
// fallbacks (list then stat, read and discard, write in place).
type (
	// RangeOpener opens a byte range of a file; length < 0 means to the end.
	RangeOpener interface {
		OpenReadRange(ctx context.Context, path string, offset, length int64) (io.ReadCloser, error)
	}
	// PrefixLister lists every object under a prefix with its size, in as
	// few requests as the store allows.
	PrefixLister interface {
		ListPrefix(ctx context.Context, prefix string) ([]FileInfo, error)
	}
	// AtomicCreator creates files that become visible only when closed
	// without error.
	AtomicCreator interface {
		CreateAtomic(ctx context.Context, path string) (io.WriteCloser, error)
	}
	// DirLister lists the immediate subdirectories of a prefix (S3:
	// ListObjectsV2 with a delimiter).
	DirLister interface {
		ListDirs(ctx context.Context, prefix string) ([]string, error)
	}
)

// ListDirs lists the immediate subdirectories of a directory prefix (one
// ending in "/"), as names or paths the filesystem chooses; callers take
// the last element. A prefix that does not exist has none.
func ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if IsLocal(prefix) {
		entries, err := os.ReadDir(prefix)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		return names, nil
	}
	fs, err := fileSystem(ctx, prefix)
	if err != nil {
		return nil, err
	}
	dl, ok := fs.(DirLister)
	if !ok {
		return nil, fmt.Errorf("blob: cannot list directories of %s", prefix)
	}
	return dl.ListDirs(ctx, prefix)
}

// ReadAll reads a whole file of the listed size, into buf's capacity when
// it fits. A local file costs three system calls (files in lumen's layouts
// appear atomically and never change, so the listed size is the size).
func ReadAll(ctx context.Context, path string, size int64, buf []byte) ([]byte, error) {
	if IsLocal(path) {
		return readLocalFile(path, size, buf)
	}
	rc, err := OpenRange(ctx, path, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if int64(cap(buf)) < size+1 {
		buf = make([]byte, 0, size+1)
	}
	b := bytes.NewBuffer(buf[:0])
	if _, err := b.ReadFrom(rc); err != nil {
		return nil, fmt.Errorf("blob: read %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// FileInfo is a listed file.
type FileInfo struct {
	Path string
	Size int64
	// Version changes whenever the file's content does, as far as the
	// listing can tell: the ETag on S3, the modification time (ns) of a
	// local file; "" where the filesystem gives none (then only the size
	// tells).
	Version string
}

var fsCache sync.Map // scheme -> filesystem.Interface

// fileSystem returns the (cached) Beam filesystem for path. Filesystems are
// shared per process: creating one may create a network client.
func fileSystem(ctx context.Context, path string) (filesystem.Interface, error) {
	scheme := "default"
	if i := strings.Index(path, "://"); i > 0 {
		scheme = path[:i]
	}
	if fs, ok := fsCache.Load(scheme); ok {
		return fs.(filesystem.Interface), nil
	}
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	actual, _ := fsCache.LoadOrStore(scheme, fs)
	return actual.(filesystem.Interface), nil
}

// IsLocal reports whether path is a local file path rather than a URL of
// another filesystem (s3://, gs://, …).
func IsLocal(path string) bool { return !strings.Contains(path, "://") }

// OpenRange opens [offset, offset+length) of a file on any Beam filesystem;
// length < 0 reads to the end.
func OpenRange(ctx context.Context, path string, offset, length int64) (io.ReadCloser, error) {
	if IsLocal(path) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if offset > 0 {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return nil, err
			}
		}
		return limitCloser(f, length), nil
	}
	fs, err := fileSystem(ctx, path)
	if err != nil {
		return nil, err
	}
	if ro, ok := fs.(RangeOpener); ok {
		return ro.OpenReadRange(ctx, path, offset, length)
	}
	rc, err := fs.OpenRead(ctx, path)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
			rc.Close()
			return nil, err
		}
	}
	return limitCloser(rc, length), nil
}

func limitCloser(rc io.ReadCloser, length int64) io.ReadCloser {
	if length < 0 {
		return rc
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, length), rc}
}

// ListPrefix lists the files under a directory prefix (ending in "/"),
// recursively, with sizes.
func ListPrefix(ctx context.Context, prefix string) ([]FileInfo, error) {
	if IsLocal(prefix) {
		var out []FileInfo
		root := filepath.Clean(prefix)
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == root {
					return filepath.SkipDir // a partition with no data
				}
				return err
			}
			if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return nil // hidden files are in-progress writes
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, FileInfo{Path: p, Size: info.Size(), Version: strconv.FormatInt(info.ModTime().UnixNano(), 10)})
			return nil
		})
		return out, err
	}
	fs, err := fileSystem(ctx, prefix)
	if err != nil {
		return nil, err
	}
	if pl, ok := fs.(PrefixLister); ok {
		return pl.ListPrefix(ctx, prefix)
	}
	names, err := fs.List(ctx, prefix+"*")
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(names))
	for _, n := range names {
		size, err := fs.Size(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, FileInfo{Path: n, Size: size})
	}
	return out, nil
}

// Create opens path for writing such that the file appears complete or not
// at all: on local disks by writing a hidden temporary file and renaming it
// on Close; on filesystems with AtomicCreator (S3: one PUT or a completed
// multipart upload) natively; elsewhere through the filesystem's OpenWrite.
// Abort discards a partial write; WriteFile writes a whole buffer.
func Create(ctx context.Context, path string, opts ...CreateOption) (io.WriteCloser, error) {
	var co createOptions
	for _, o := range opts {
		o(&co)
	}
	if IsLocal(path) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
		if err != nil {
			return nil, err
		}
		return &renameOnClose{File: f, final: path, noSync: co.noSync}, nil
	}
	fs, err := fileSystem(ctx, path)
	if err != nil {
		return nil, err
	}
	if ac, ok := fs.(AtomicCreator); ok {
		return ac.CreateAtomic(ctx, path)
	}
	return fs.OpenWrite(ctx, path)
}

// Abort discards a file Create opened and not yet closed. A writer that
// cannot abort is left unclosed rather than closed, since closing could
// publish half a file.
func Abort(w io.WriteCloser) {
	if a, ok := w.(interface{ Abort() }); ok {
		a.Abort()
	}
}

// WriteFile writes b to path atomically (Create): the file appears whole,
// or, if writing fails, not at all.
func WriteFile(ctx context.Context, path string, b []byte, opts ...CreateOption) error {
	w, err := Create(ctx, path, opts...)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		Abort(w)
		return err
	}
	return w.Close()
}

// CreateOption configures Create.
type CreateOption func(*createOptions)

type createOptions struct{ noSync bool }

// NoSync skips the fsync before a local file is renamed into place: the file
// still appears atomically, but may be lost in a power failure. For bulk
// writers that can regenerate their output (cmd/gen); never for the
// archiver, which commits Kafka offsets once a file is durable.
func NoSync() CreateOption { return func(o *createOptions) { o.noSync = true } }

type renameOnClose struct {
	*os.File
	final  string
	noSync bool
}

func (w *renameOnClose) Close() error {
	if !w.noSync {
		if err := w.File.Sync(); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.File.Close(); err != nil {
		os.Remove(w.File.Name())
		return err
	}
	return os.Rename(w.File.Name(), w.final)
}

// Abort discards the temporary file.
func (w *renameOnClose) Abort() {
	w.File.Close()
	os.Remove(w.File.Name())
}
