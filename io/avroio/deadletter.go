package avroio

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/io/deadletter"
)

// DeadLetterDir is where a pipeline's dead letters of one day go
// (DESIGN §2): <root>/deadletter/<pipeline>/dt=YYYY-MM-DD.
func DeadLetterDir(root, pipeline, day string) string {
	return fmt.Sprintf("%s/deadletter/%s/dt=%s", strings.TrimSuffix(root, "/"), pipeline, day)
}

// WriteDeadLetterFile writes records to path as one Avro file, sorted by
// source, offset and index so the same records give the same bytes, and
// atomically (Create): a re-run with the same input overwrites the file.
func WriteDeadLetterFile(ctx context.Context, path string, records []deadletter.Record) error {
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
	w, err := NewWriter(&buf, deadletter.Schema, WithSyncMarker(sync), WithCodec(CodecDeflate))
	if err != nil {
		return err
	}
	var rec []byte
	for _, r := range records {
		if rec, err = deadletter.AppendBinary(rec[:0], r); err != nil {
			return fmt.Errorf("avroio: encode dead letter: %w", err)
		}
		if err := w.AppendEncoded(rec); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	out, err := Create(ctx, path)
	if err != nil {
		return fmt.Errorf("avroio: dead letters %s: %w", path, err)
	}
	if _, err := out.Write(buf.Bytes()); err != nil {
		out.Close()
		return fmt.Errorf("avroio: dead letters %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("avroio: dead letters %s: %w", path, err)
	}
	return nil
}

// ReadDeadLetters reads a dead-letter file (for tools and tests).
func ReadDeadLetters(ctx context.Context, path string) ([]deadletter.Record, error) {
	rc, err := OpenRange(ctx, path, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := goavro.NewOCFReader(rc)
	if err != nil {
		return nil, err
	}
	var out []deadletter.Record
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			return nil, err
		}
		d, err := deadletter.FromNative(v)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, r.Err()
}
