package deadletter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lumenhq/lumen/io/deadletter"
)

// Dead letters of a run go to one Avro file per unit, written atomically;
// any Avro reader can read them back.
func ExampleWriteFile() {
	root, _ := os.MkdirTemp("", "lumen-deadletter-example")
	defer os.RemoveAll(root)
	path := filepath.Join(deadletter.Dir(root, "batch", "2026-11-20"), "unit-00001.avro")
	ctx := context.Background()
	err := deadletter.WriteFile(ctx, path, []deadletter.Record{
		{Pipeline: "batch", Source: "raw/crash/dt=2026-11-20/hr=10/part-1.avro", Offset: -1, Index: -1, Reason: "bad_magic", Detail: "file does not start with Obj\\x01"},
		{Pipeline: "batch", Source: "raw/crash/dt=2026-11-20/hr=10/part-0.avro", Offset: 4096, Index: 3, Lost: 1, Reason: "empty_app_id", Payload: []byte{1, 2}},
	})
	fmt.Println("written:", err)
	recs, err := deadletter.ReadFile(ctx, path)
	for _, r := range recs {
		fmt.Println(filepath.Base(r.Source), r.Reason, r.Lost)
	}
	fmt.Println(err)
	// Output:
	// written: <nil>
	// part-0.avro empty_app_id 1
	// part-1.avro bad_magic 0
	// <nil>
}
