package blob_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lumenhq/lumen/io/blob"
)

// A file created with Create appears whole when it is closed, never in
// part; ListPrefix then finds it with its size, and OpenRange reads a part.
func ExampleCreate() {
	dir, _ := os.MkdirTemp("", "lumen-blob-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "dt=2026-11-20", "part-0.avro")
	w, _ := blob.Create(ctx, path)
	io.WriteString(w, "hello, lumen")
	before, _ := blob.ListPrefix(ctx, dir+"/")
	fmt.Println("before close:", len(before), "files")
	fmt.Println(w.Close())

	files, _ := blob.ListPrefix(ctx, dir+"/")
	for _, f := range files {
		fmt.Println(filepath.Base(f.Path), f.Size)
	}
	r, _ := blob.OpenRange(ctx, path, 7, 5)
	b, _ := io.ReadAll(r)
	r.Close()
	fmt.Println(string(b))
	// Output:
	// before close: 0 files
	// <nil>
	// part-0.avro 12
	// lumen
}
