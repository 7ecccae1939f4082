// Package avrotest reads Avro container files in tests with goavro, a
// reader independent of lumen's own (io/avroio), so what lumen wrote is
// checked by code that did not write it.
package avrotest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
)

// ReadEvents reads every record of the OCF file at p (any Beam filesystem
// path) as an event of kind k, invalid ones included.
func ReadEvents(t testing.TB, p string, k event.Kind) []event.Event {
	t.Helper()
	rc, err := blob.OpenRange(context.Background(), p, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := goavro.NewOCFReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	var out []event.Event
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		e, err := event.FromNative(k, v)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, e)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return out
}
