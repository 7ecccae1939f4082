package event

import (
	"embed"
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"
)

//go:embed schemas/*.avsc
var schemaFiles embed.FS

// Schema is one kind's pinned Avro schema with everything derived from it.
type Schema struct {
	Kind Kind
	// JSON is the .avsc text exactly as embedded.
	JSON string
	// Canonical is the schema's Parsing Canonical Form per the Avro
	// specification (logicalType stripped, primitives bare).
	Canonical string
	// Fingerprint is CRC-64-AVRO of Canonical: what Java Avro and the
	// specification compute, and what lumen writes in single-object headers.
	Fingerprint uint64
	// GoavroFingerprint is what goavro's Codec.Rabin computes for the same
	// schema. It differs from Fingerprint because goavro keeps
	// {"type":"long"} for logical types; lumen accepts it from goavro
	// producers but never writes it.
	GoavroFingerprint uint64
	// Codec is a goavro codec for the schema, for the general (slow) path.
	Codec *goavro.Codec
}

var (
	schemasOnce sync.Once
	schemas     [HandledException + 1]*Schema
	schemasErr  error
)

func loadSchemas() {
	for _, k := range Kinds {
		b, err := schemaFiles.ReadFile("schemas/" + k.String() + ".avsc")
		if err != nil {
			schemasErr = fmt.Errorf("event: embedded schema for %s: %w", k, err)
			return
		}
		codec, err := goavro.NewCodec(string(b))
		if err != nil {
			schemasErr = fmt.Errorf("event: embedded schema for %s: %w", k, err)
			return
		}
		pcf, err := CanonicalForm(b)
		if err != nil {
			schemasErr = fmt.Errorf("event: embedded schema for %s: %w", k, err)
			return
		}
		schemas[k] = &Schema{
			Kind:              k,
			JSON:              string(b),
			Canonical:         pcf,
			Fingerprint:       Fingerprint64([]byte(pcf)),
			GoavroFingerprint: codec.Rabin,
			Codec:             codec,
		}
	}
}

// SchemaOf returns the pinned schema of k. It panics if k is not valid: that
// is a programming error, not bad input.
func SchemaOf(k Kind) *Schema {
	schemasOnce.Do(loadSchemas)
	if schemasErr != nil {
		panic(schemasErr)
	}
	if !k.Valid() {
		panic(fmt.Sprintf("event: SchemaOf(%v)", k))
	}
	return schemas[k]
}

// KindOfCanonical returns the kind whose pinned schema has exactly this
// Parsing Canonical Form. A writer schema that matches can be decoded with
// the specialised decoder; any other goes through goavro and FromNative.
func KindOfCanonical(pcf string) (Kind, bool) {
	for _, k := range Kinds {
		if SchemaOf(k).Canonical == pcf {
			return k, true
		}
	}
	return 0, false
}
