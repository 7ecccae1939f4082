package deadletter

import (
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// Schema is the Avro schema of dead-letter files
// (<root>/deadletter/<pipeline>/dt=YYYY-MM-DD/<name>.avro).
const Schema = `{
  "type": "record", "name": "DeadLetter", "namespace": "lumen.deadletter",
  "fields": [
    {"name": "pipeline", "type": "string"},
    {"name": "source", "type": "string"},
    {"name": "offset", "type": "long"},
    {"name": "index", "type": "long"},
    {"name": "lost", "type": "long"},
    {"name": "reason", "type": "string"},
    {"name": "detail", "type": "string"},
    {"name": "payload", "type": ["null", "bytes"], "default": null}
  ]
}`

var codec = sync.OnceValues(func() (*goavro.Codec, error) { return goavro.NewCodec(Schema) })

// AppendBinary appends r's Avro binary encoding in Schema.
func AppendBinary(b []byte, r Record) ([]byte, error) {
	c, err := codec()
	if err != nil {
		return nil, err
	}
	var payload any
	if r.Payload != nil {
		payload = goavro.Union("bytes", r.Payload)
	}
	return c.BinaryFromNative(b, map[string]any{
		"pipeline": r.Pipeline, "source": r.Source, "offset": r.Offset, "index": r.Index,
		"lost": r.Lost, "reason": r.Reason, "detail": r.Detail, "payload": payload,
	})
}

// FromNative converts a record decoded by goavro with Schema.
func FromNative(v any) (Record, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Record{}, fmt.Errorf("deadletter: record is %T", v)
	}
	r := Record{}
	r.Pipeline, _ = m["pipeline"].(string)
	r.Source, _ = m["source"].(string)
	r.Offset, _ = m["offset"].(int64)
	r.Index, _ = m["index"].(int64)
	r.Lost, _ = m["lost"].(int64)
	r.Reason, _ = m["reason"].(string)
	r.Detail, _ = m["detail"].(string)
	if u, ok := m["payload"].(map[string]any); ok {
		r.Payload, _ = u["bytes"].([]byte)
	}
	return r, nil
}
