//go:build !unix

package blob

import "os"

func readLocalFile(path string, _ int64, _ []byte) ([]byte, error) { return os.ReadFile(path) }
