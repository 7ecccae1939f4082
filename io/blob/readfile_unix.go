//go:build unix

package blob

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// readLocalFile reads a whole local file of the listed size into buf's
// capacity with three system calls (open, read, close). os.Open adds an
// fstat and a read to find EOF, and with 144,000 small files a run makes
// those counts show up in profiles. Files in the raw layout appear
// atomically and never change, so the listed size is the size; a file that
// was cut short since is reported as such.
func readLocalFile(path string, size int64, buf []byte) ([]byte, error) {
	fd, err := openRetry(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	for off := 0; off < len(buf); {
		n, err := syscall.Read(fd, buf[off:])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return nil, fmt.Errorf("blob: %s: %d bytes, listed as %d", path, off, size)
		}
		off += n
	}
	return buf, nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return fd, err
	}
}
