package avroio

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
)

// recordDecoder turns one block's bytes into events of one kind, choosing
// per file between the specialised decoder (the writer schema is the pinned
// one) and goavro plus event.FromNative (any other writer schema that Avro
// schema resolution accepts: extra fields, another field order, int for
// long, bytes for string).
type recordDecoder struct {
	kind  event.Kind
	fast  *event.Decoder
	codec *goavro.Codec // writer codec for the general path; nil on the fast path
}

// resolution is the cached outcome of resolving one writer schema.
type resolution struct {
	codec *goavro.Codec // nil: the pinned schema, take the fast path
	err   error
}

type resolutionKey struct {
	kind   event.Kind
	schema string
}

// resolutions caches resolveWriter's work by (kind, writer schema): every
// small file repeats its schema, and parsing it per file cost 14% of a
// read. Writer schemas are few, so the cache stays small; it is capped
// anyway against a pathological input.
var (
	resolutionsMu sync.Mutex
	resolutions   = map[resolutionKey]resolution{}
)

const maxResolutions = 1024

// resolveWriter decides how to read records written with writerSchema as
// kind k. A schema that cannot resolve to k's pinned schema is a foreign
// schema: the whole file goes to the dead letter.
func resolveWriter(k event.Kind, writerSchema []byte, fast *event.Decoder) (*recordDecoder, error) {
	key := resolutionKey{k, string(writerSchema)}
	resolutionsMu.Lock()
	r, ok := resolutions[key]
	resolutionsMu.Unlock()
	if !ok {
		r = resolveUncached(k, writerSchema)
		resolutionsMu.Lock()
		if len(resolutions) >= maxResolutions {
			clear(resolutions)
		}
		resolutions[key] = r
		resolutionsMu.Unlock()
	}
	if r.err != nil {
		ce := *r.err.(*CorruptError) // a copy: callers fill in the path
		return nil, &ce
	}
	if r.codec == nil {
		return &recordDecoder{kind: k, fast: fast}, nil
	}
	return &recordDecoder{kind: k, codec: r.codec}, nil
}

func resolveUncached(k event.Kind, writerSchema []byte) resolution {
	rd, err := resolve(k, writerSchema)
	if err != nil {
		return resolution{err: err}
	}
	return resolution{codec: rd.codec}
}

func resolve(k event.Kind, writerSchema []byte) (*recordDecoder, error) {
	fast := (*event.Decoder)(nil)
	pcf, err := event.CanonicalForm(writerSchema)
	if err != nil {
		return nil, &CorruptError{Reason: ReasonBadHeader, Detail: "writer schema: " + err.Error()}
	}
	if pcf == event.SchemaOf(k).Canonical {
		return &recordDecoder{kind: k, fast: fast}, nil
	}
	if err := checkResolvable(k, writerSchema); err != nil {
		return nil, &CorruptError{Reason: ReasonForeignSchema, Detail: err.Error()}
	}
	codec, err := goavro.NewCodec(string(writerSchema))
	if err != nil {
		return nil, &CorruptError{Reason: ReasonForeignSchema, Detail: "writer schema: " + err.Error()}
	}
	return &recordDecoder{kind: k, codec: codec}, nil
}

// checkResolvable applies Avro's schema-resolution rules for records at the
// schema level: the same unqualified record name, and for every reader field
// a writer field of the same name whose type promotes to the reader's.
func checkResolvable(k event.Kind, writerSchema []byte) error {
	var w struct {
		Type   any    `json:"type"`
		Name   string `json:"name"`
		Fields []struct {
			Name string `json:"name"`
			Type any    `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(writerSchema, &w); err != nil {
		return fmt.Errorf("writer schema is not a record: %v", err)
	}
	if w.Type != "record" {
		return fmt.Errorf("writer schema is %v, not a record", w.Type)
	}
	want := k.RecordName()[strings.LastIndexByte(k.RecordName(), '.')+1:]
	got := w.Name[strings.LastIndexByte(w.Name, '.')+1:]
	if got != want {
		return fmt.Errorf("writer record is %s, want %s", w.Name, want)
	}
	writerTypes := map[string]any{}
	for _, f := range w.Fields {
		writerTypes[f.Name] = f.Type
	}
	need := map[string]string{
		"app_id": "string", "app_version": "string", "platform": "string",
		"device_id": "bytes", "event_time": "long", "received_time": "long",
	}
	if k.HasSignature() {
		need["signature"] = "string"
	}
	for name, readerType := range need {
		wt, ok := writerTypes[name]
		if !ok {
			return fmt.Errorf("writer schema lacks field %q, which has no default", name)
		}
		if !promotes(wt, readerType) {
			return fmt.Errorf("field %q: writer type %v does not resolve to %s", name, wt, readerType)
		}
	}
	return nil
}

// promotes reports whether a writer type resolves to a primitive reader
// type. For a union, some branch must (a null branch then fails per record).
func promotes(writer any, reader string) bool {
	switch t := writer.(type) {
	case string:
		switch reader {
		case "long":
			return t == "long" || t == "int"
		case "string", "bytes":
			return t == "string" || t == "bytes"
		}
	case map[string]any:
		return promotes(t["type"], reader)
	case []any:
		for _, b := range t {
			if promotes(b, reader) {
				return true
			}
		}
	}
	return false
}

// decodeBlock decodes every record of b, appending the events to out, and
// records in bounds each record's byte range in b.Data (for dead letters).
// It is all or nothing: on error the caller discards the whole block.
func (d *recordDecoder) decodeBlock(b *block, out []event.Event, bounds []int) ([]event.Event, []int, error) {
	data := b.Data
	pos := 0
	for i := int64(0); i < b.Count; i++ {
		var ev event.Event
		start := pos
		if d.codec == nil {
			n, err := d.fast.Decode(d.kind, data[pos:], &ev)
			if err != nil {
				return out, bounds, fmt.Errorf("record %d of %d: %w", i, b.Count, err)
			}
			pos += n
		} else {
			native, rest, err := d.codec.NativeFromBinary(data[pos:])
			if err != nil {
				return out, bounds, fmt.Errorf("record %d of %d: %w", i, b.Count, err)
			}
			pos = len(data) - len(rest)
			if ev, err = event.FromNative(d.kind, native); err != nil {
				return out, bounds, fmt.Errorf("record %d of %d: %w", i, b.Count, err)
			}
		}
		out = append(out, ev)
		bounds = append(bounds, start)
	}
	if pos != len(data) {
		return out, bounds, fmt.Errorf("%d bytes left after %d records", len(data)-pos, b.Count)
	}
	return out, append(bounds, pos), nil
}
