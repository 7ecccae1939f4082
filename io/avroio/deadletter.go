package avroio

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/io/deadletter"
)

func init() {
	register.DoFn4x1[context.Context, string, func(*deadletter.Record) bool, func(int64), error](&writeDeadLettersFn{})
	register.Iter1[deadletter.Record]()
	register.Emitter1[int64]()
}

// DeadLetterDir is where a pipeline's dead letters of one day go
// (DESIGN §2): <root>/deadletter/<pipeline>/dt=YYYY-MM-DD.
func DeadLetterDir(root, pipeline, day string) string {
	return fmt.Sprintf("%s/deadletter/%s/dt=%s", strings.TrimSuffix(root, "/"), pipeline, day)
}

// WriteDeadLetters writes each group of dead letters to its own Avro file,
// <dir>/<name>.avro, atomically. Names come from the keys, so a re-run with
// the same input overwrites instead of adding files. It returns the number
// of records written per file.
//
//	keyed: PCollection<KV<string, deadletter.Record>> → PCollection<int64>
func WriteDeadLetters(s beam.Scope, dir string, keyed beam.PCollection) beam.PCollection {
	s = s.Scope("avroio.WriteDeadLetters")
	return beam.ParDo(s, &writeDeadLettersFn{Dir: dir}, beam.GroupByKey(s, keyed))
}

type writeDeadLettersFn struct {
	Dir string
}

func (f *writeDeadLettersFn) ProcessElement(ctx context.Context, name string, recs func(*deadletter.Record) bool, emit func(int64)) error {
	var all []deadletter.Record
	var r deadletter.Record
	for recs(&r) {
		all = append(all, r)
	}
	// Deterministic content for a deterministic name.
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
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
	for _, r := range all {
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
	path := f.Dir + "/" + name + ".avro"
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
	emit(int64(len(all)))
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
