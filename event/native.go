package event

import (
	"errors"
	"fmt"
	"time"
)

// ErrMissingField means a record lacks a field the pinned schema requires.
// The pinned schemas give no defaults, so Avro schema resolution fails too.
var ErrMissingField = errors.New("event: missing field")

// ErrFieldType means a field holds a type that Avro schema resolution cannot
// promote to the pinned field's type.
var ErrFieldType = errors.New("event: field type")

// FromNative converts a record decoded by goavro (map[string]any, goavro's
// "native form") into an Event of kind k, applying Avro's schema-resolution
// rules for a reader with the pinned schema: fields are matched by name, so
// writer field order is irrelevant and extra writer fields are ignored;
// int promotes to long; string and bytes promote to each other; a union
// resolves to its written branch.
func FromNative(k Kind, native any) (Event, error) {
	m, ok := native.(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("%w: record is %T, not a map", ErrFieldType, native)
	}
	ev := Event{Kind: k}
	var err error
	if ev.AppID, err = nativeString(m, "app_id"); err != nil {
		return Event{}, err
	}
	if ev.AppVersion, err = nativeString(m, "app_version"); err != nil {
		return Event{}, err
	}
	if ev.Platform, err = nativeString(m, "platform"); err != nil {
		return Event{}, err
	}
	if ev.DeviceID, err = nativeBytes(m, "device_id"); err != nil {
		return Event{}, err
	}
	if ev.EventTime, err = nativeMillis(m, "event_time"); err != nil {
		return Event{}, err
	}
	if ev.ReceivedTime, err = nativeMillis(m, "received_time"); err != nil {
		return Event{}, err
	}
	if k.HasSignature() {
		if ev.Signature, err = nativeString(m, "signature"); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

// field returns the value of name, unwrapping goavro's union form
// (map[string]any{"branch": value}).
func field(m map[string]any, name string) (any, error) {
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrMissingField, name)
	}
	if u, ok := v.(map[string]any); ok && len(u) == 1 {
		for _, inner := range u {
			v = inner
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%w %q is null", ErrFieldType, name)
	}
	return v, nil
}

func nativeString(m map[string]any, name string) (string, error) {
	v, err := field(m, name)
	if err != nil {
		return "", err
	}
	switch t := v.(type) {
	case string:
		return t, nil
	case []byte:
		return string(t), nil
	}
	return "", fmt.Errorf("%w: %q is %T, want string", ErrFieldType, name, v)
}

func nativeBytes(m map[string]any, name string) ([]byte, error) {
	v, err := field(m, name)
	if err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case []byte:
		return t, nil
	case string:
		return []byte(t), nil
	}
	return nil, fmt.Errorf("%w: %q is %T, want bytes", ErrFieldType, name, v)
}

func nativeMillis(m map[string]any, name string) (int64, error) {
	v, err := field(m, name)
	if err != nil {
		return 0, err
	}
	switch t := v.(type) {
	case time.Time:
		return t.UnixMilli(), nil
	case int64:
		return t, nil
	case int32:
		return int64(t), nil
	case int:
		return int64(t), nil
	}
	return 0, fmt.Errorf("%w: %q is %T, want long", ErrFieldType, name, v)
}

// ToNative returns e in goavro's native form for e.Kind's pinned schema.
func ToNative(e *Event) map[string]any {
	m := map[string]any{
		"app_id":        e.AppID,
		"app_version":   e.AppVersion,
		"platform":      e.Platform,
		"device_id":     e.DeviceID,
		"event_time":    time.UnixMilli(e.EventTime).UTC(),
		"received_time": time.UnixMilli(e.ReceivedTime).UTC(),
	}
	if e.Kind.HasSignature() {
		m["signature"] = e.Signature
	}
	return m
}
