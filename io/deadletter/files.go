package deadletter

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/linkedin/goavro/v2"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
)

// Dir is where a pipeline's dead letters of one day go
// (DESIGN §2): <root>/deadletter/<pipeline>/dt=YYYY-MM-DD.
func Dir(root, pipeline, day string) string {
	return fmt.Sprintf("%s/deadletter/%s/dt=%s", strings.TrimSuffix(root, "/"), pipeline, day)
}

// WriteFile writes records to path as one Avro file, sorted by
// source, offset and index so the same records give the same bytes, and
// atomically (blob.Create): a re-run with the same input overwrites the file.
func WriteFile(ctx context.Context, path string, records []Record) error {
	sort.Slice(records, func(i, j int) bool {
		a, b := records[i], records[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Offset != b.Offset {
			return a.Offset < b.Offset
		}
		return a.Index < b.Index
	})
	var buf bytes.Buffer
	var sync [16]byte
	copy(sync[:], "lumen.deadletter")
	w, err := avroio.NewWriter(&buf, Schema, avroio.WithSyncMarker(sync), avroio.WithCodec(avroio.CodecDeflate))
	if err != nil {
		return err
	}
	var rec []byte
	for _, r := range records {
		if rec, err = AppendBinary(rec[:0], r); err != nil {
			return fmt.Errorf("deadletter: encode dead letter: %w", err)
		}
		if err := w.AppendEncoded(rec); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := blob.WriteFile(ctx, path, buf.Bytes()); err != nil {
		return fmt.Errorf("deadletter: dead letters %s: %w", path, err)
	}
	return nil
}

// ReadFile reads a dead-letter file (for tools and tests).
func ReadFile(ctx context.Context, path string) ([]Record, error) {
	rc, err := blob.OpenRange(ctx, path, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := goavro.NewOCFReader(rc)
	if err != nil {
		return nil, err
	}
	var out []Record
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			return nil, err
		}
		d, err := FromNative(v)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, r.Err()
}
