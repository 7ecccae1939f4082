package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// CanonicalForm returns the Parsing Canonical Form of an Avro schema as the
// Avro specification defines it ("Transforming into Parsing Canonical Form":
// PRIMITIVES, FULLNAMES, STRIP, ORDER, STRINGS, INTEGERS, WHITESPACE), the
// form Java Avro fingerprints. goavro's CanonicalSchema differs for logical
// types, which is why lumen computes its own.
func CanonicalForm(schemaJSON []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(schemaJSON))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("event: schema is not JSON: %w", err)
	}
	var sb strings.Builder
	if err := writeCanonical(&sb, v, ""); err != nil {
		return "", err
	}
	return sb.String(), nil
}

var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

func fullName(name, namespace string) string {
	if strings.Contains(name, ".") || namespace == "" {
		return name
	}
	return namespace + "." + name
}

func writeCanonical(sb *strings.Builder, v any, ns string) error {
	switch t := v.(type) {
	case string:
		if primitives[t] {
			sb.WriteString(strconv.Quote(t))
		} else {
			sb.WriteString(strconv.Quote(fullName(t, ns)))
		}
		return nil
	case []any:
		sb.WriteByte('[')
		for i, b := range t {
			if i > 0 {
				sb.WriteByte(',')
			}
			if err := writeCanonical(sb, b, ns); err != nil {
				return err
			}
		}
		sb.WriteByte(']')
		return nil
	case map[string]any:
		return writeCanonicalObject(sb, t, ns)
	}
	return fmt.Errorf("event: schema: unexpected JSON value %v", v)
}

func writeCanonicalObject(sb *strings.Builder, m map[string]any, ns string) error {
	typ, ok := m["type"]
	if !ok {
		return fmt.Errorf("event: schema: object without type")
	}
	ts, isString := typ.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: the attributes are stripped.
		return writeCanonical(sb, typ, ns)
	}
	switch ts {
	case "record", "error", "enum", "fixed":
		name, _ := m["name"].(string)
		if name == "" {
			return fmt.Errorf("event: schema: %s without name", ts)
		}
		if nsAttr, ok := m["namespace"].(string); ok && !strings.Contains(name, ".") {
			name = fullName(name, nsAttr)
		} else {
			name = fullName(name, ns)
		}
		innerNS := ns
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			innerNS = name[:i]
		}
		fmt.Fprintf(sb, `{"name":%s,"type":%s`, strconv.Quote(name), strconv.Quote(ts))
		switch ts {
		case "enum":
			syms, _ := m["symbols"].([]any)
			sb.WriteString(`,"symbols":[`)
			for i, s := range syms {
				if i > 0 {
					sb.WriteByte(',')
				}
				str, _ := s.(string)
				sb.WriteString(strconv.Quote(str))
			}
			sb.WriteByte(']')
		case "fixed":
			size, ok := m["size"].(json.Number)
			if !ok {
				return fmt.Errorf("event: schema: fixed %s without size", name)
			}
			n, err := strconv.ParseInt(string(size), 10, 64)
			if err != nil {
				return fmt.Errorf("event: schema: fixed %s: bad size %s", name, size)
			}
			fmt.Fprintf(sb, `,"size":%d`, n)
		default:
			fields, _ := m["fields"].([]any)
			sb.WriteString(`,"fields":[`)
			for i, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					return fmt.Errorf("event: schema: record %s: field %d is not an object", name, i)
				}
				if i > 0 {
					sb.WriteByte(',')
				}
				fname, _ := fm["name"].(string)
				fmt.Fprintf(sb, `{"name":%s,"type":`, strconv.Quote(fname))
				if err := writeCanonical(sb, fm["type"], innerNS); err != nil {
					return err
				}
				sb.WriteByte('}')
			}
			sb.WriteByte(']')
		}
		sb.WriteByte('}')
		return nil
	case "array":
		sb.WriteString(`{"type":"array","items":`)
		if err := writeCanonical(sb, m["items"], ns); err != nil {
			return err
		}
		sb.WriteByte('}')
		return nil
	case "map":
		sb.WriteString(`{"type":"map","values":`)
		if err := writeCanonical(sb, m["values"], ns); err != nil {
			return err
		}
		sb.WriteByte('}')
		return nil
	}
	// A primitive (possibly with a logicalType, which STRIP removes) or a
	// reference to a named type.
	return writeCanonical(sb, ts, ns)
}

// crc64AvroTable is the lookup table of the CRC-64-AVRO (Rabin) fingerprint
// given in the Avro specification.
var crc64AvroTable = func() (t [256]uint64) {
	for i := range t {
		fp := uint64(i)
		for j := 0; j < 8; j++ {
			fp = (fp >> 1) ^ (fingerprintEmpty & -(fp & 1))
		}
		t[i] = fp
	}
	return t
}()

const fingerprintEmpty = 0xc15d213aa4d7a795

// Fingerprint64 is the Avro specification's CRC-64-AVRO fingerprint of buf.
func Fingerprint64(buf []byte) uint64 {
	fp := uint64(fingerprintEmpty)
	for _, b := range buf {
		fp = (fp >> 8) ^ crc64AvroTable[byte(fp)^b]
	}
	return fp
}
