package event

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleEvents(n int, seed uint64) []Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	out := make([]Event, n)
	for i := range out {
		k := Kinds[rng.IntN(len(Kinds))]
		dev := make([]byte, 16)
		for j := range dev {
			dev[j] = byte(rng.Uint32())
		}
		e := Event{
			Kind:         k,
			AppID:        []string{"com.example.a", "com.example.b", "ünïcode.app"}[rng.IntN(3)],
			AppVersion:   []string{"1.0.0", "1.1.0", "2.0.0-beta"}[rng.IntN(3)],
			Platform:     []string{"ios", "android"}[rng.IntN(2)],
			DeviceID:     dev,
			EventTime:    base + rng.Int64N(86_400_000) - 43_200_000,
			ReceivedTime: base + rng.Int64N(86_400_000),
		}
		if k.HasSignature() {
			e.Signature = "sig-" + string(rune('a'+rng.IntN(26)))
		}
		out[i] = e
	}
	return out
}

// The specialised codec and goavro must agree in both directions.
func TestBinaryMatchesGoavro(t *testing.T) {
	d := NewDecoder()
	for _, e := range sampleEvents(300, 1) {
		ours := AppendBinary(nil, &e)
		codec := SchemaOf(e.Kind).Codec
		theirs, err := codec.BinaryFromNative(nil, ToNative(&e))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ours, theirs) {
			t.Fatalf("encoding differs for %v:\nours   %x\ngoavro %x", e, ours, theirs)
		}
		var got Event
		n, err := d.Decode(e.Kind, theirs, &got)
		if err != nil || n != len(theirs) {
			t.Fatalf("Decode: n=%d err=%v", n, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("Decode = %v, want %v", got, e)
		}
		native, rest, err := codec.NativeFromBinary(ours)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro decode: %v (rest %d)", err, len(rest))
		}
		fromNative, err := FromNative(e.Kind, native)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fromNative, e) {
			t.Fatalf("FromNative = %v, want %v", fromNative, e)
		}
	}
}

func TestDecodeTruncated(t *testing.T) {
	e := sampleEvents(1, 2)[0]
	b := AppendBinary(nil, &e)
	d := NewDecoder()
	for i := 0; i < len(b); i++ {
		var got Event
		_, err := d.Decode(e.Kind, b[:i], &got)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d/%d: err = %v, want ErrTruncated", i, len(b), err)
		}
	}
	// A negative length is malformed, not truncated.
	var got Event
	if _, err := d.Decode(AppLoad, []byte{0x01}, &got); !errors.Is(err, ErrMalformed) {
		t.Errorf("negative length: err = %v", err)
	}
}

func TestSingleObject(t *testing.T) {
	d := NewDecoder()
	for _, e := range sampleEvents(50, 3) {
		msg := AppendSingle(nil, &e)
		var got Event
		if err := d.DecodeSingle(msg, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("got %v want %v", got, e)
		}
		// goavro producers write goavro's fingerprint; accept it.
		gmsg, err := SchemaOf(e.Kind).Codec.SingleFromNative(nil, ToNative(&e))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.DecodeSingle(gmsg, &got); err != nil {
			t.Fatalf("goavro single-object: %v", err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("goavro single-object: got %v want %v", got, e)
		}
		if err := d.DecodeSingle(append(msg, 0), &got); !errors.Is(err, ErrMalformed) {
			t.Errorf("trailing byte: %v", err)
		}
	}
	var got Event
	if err := d.DecodeSingle([]byte("hello, world"), &got); !errors.Is(err, ErrNotSingleObject) {
		t.Errorf("garbage: %v", err)
	}
	bad := AppendSingle(nil, &sampleEvents(1, 4)[0])
	bad[5] ^= 0xff
	if err := d.DecodeSingle(bad, &got); !errors.Is(err, ErrUnknownFingerprint) {
		t.Errorf("bad fingerprint: %v", err)
	}
}

func TestFromNativeResolution(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := map[string]any{
		"extra":         "ignored",
		"received_time": int32(1000), // int promotes to long
		"event_time":    ts,
		"device_id":     "as-string", // string promotes to bytes
		"platform":      map[string]any{"string": "ios"},
		"app_version":   []byte("1.0"),
		"app_id":        "a",
		"signature":     "s",
	}
	e, err := FromNative(Crash, m)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{Kind: Crash, AppID: "a", AppVersion: "1.0", Platform: "ios", DeviceID: []byte("as-string"),
		EventTime: ts.UnixMilli(), ReceivedTime: 1000, Signature: "s"}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got %v want %v", e, want)
	}
	delete(m, "signature")
	if _, err := FromNative(Crash, m); !errors.Is(err, ErrMissingField) {
		t.Errorf("missing signature: %v", err)
	}
	if _, err := FromNative(AppLoad, m); err != nil {
		t.Errorf("app_load has no signature: %v", err)
	}
	m["event_time"] = 1.5
	if _, err := FromNative(AppLoad, m); !errors.Is(err, ErrFieldType) {
		t.Errorf("float time: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := sampleEvents(1, 5)[0]
	cases := []struct {
		name string
		mod  func(*Event)
		want Reason
	}{
		{"valid", func(*Event) {}, ""},
		{"kind", func(e *Event) { e.Kind = 0 }, ReasonBadKind},
		{"empty app", func(e *Event) { e.AppID = "" }, ReasonEmptyAppID},
		{"long app", func(e *Event) { e.AppID = string(make([]byte, 129)) }, ReasonAppIDTooLong},
		{"app 128", func(e *Event) { e.AppID = string(make([]byte, 128)) }, ""},
		{"app utf8", func(e *Event) { e.AppID = "\xff" }, ReasonAppIDNotUTF8},
		{"empty version", func(e *Event) { e.AppVersion = "" }, ReasonEmptyAppVersion},
		{"long version", func(e *Event) { e.AppVersion = string(make([]byte, 65)) }, ReasonAppVersionTooLong},
		{"version utf8", func(e *Event) { e.AppVersion = "1.\xc3" }, ReasonAppVersionNotUTF8},
		{"empty device", func(e *Event) { e.DeviceID = nil }, ReasonEmptyDeviceID},
		{"long device", func(e *Event) { e.DeviceID = make([]byte, 65) }, ReasonDeviceIDTooLong},
		{"1999 event", func(e *Event) { e.EventTime = MinTime - 1 }, ReasonEventTimeBefore2000},
		{"2000 event", func(e *Event) { e.EventTime = MinTime }, ""},
		{"1999 received", func(e *Event) { e.ReceivedTime = 0 }, ReasonReceivedTimeBefore2000},
		{"crash", func(e *Event) { e.Kind, e.Signature = Crash, "NSInvalidArgumentException -[__NSArrayM objectAtIndex:]" }, ""},
		{"empty signature", func(e *Event) { e.Kind, e.Signature = Crash, "" }, ReasonEmptySignature},
		{"signature 256", func(e *Event) { e.Kind, e.Signature = HandledException, strings.Repeat("s", 256) }, ""},
		{"long signature", func(e *Event) { e.Kind, e.Signature = HandledException, strings.Repeat("s", 10_000) }, ReasonSignatureTooLong},
		{"signature utf8", func(e *Event) { e.Kind, e.Signature = Crash, "frame \xc3(" }, ReasonSignatureNotUTF8},
		{"app load has none", func(e *Event) { e.Kind, e.Signature = AppLoad, "" }, ""},
	}
	for _, c := range cases {
		e := ok.Clone()
		c.mod(&e)
		if got := Validate(&e); got != c.want {
			t.Errorf("%s: Validate = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckFuture(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC).UnixMilli()
	hour := time.Hour.Milliseconds()
	cases := []struct {
		name               string
		eventMs, receiveMs int64
		want               Reason
	}{
		{"now", now, now, ""},
		{"event at the bound", now + hour, now, ""},
		{"event past the bound, received now: clock skew", now + hour + 1, now, ""},
		{"received past the bound", now, now + hour + 1, ReasonFutureTime},
		{"a device clock in 2090, received now: clock skew", time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), now, ""},
		{"both in 2090", time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), ReasonFutureTime},
		{"microseconds for milliseconds", now * 1000, now * 1000, ReasonFutureTime},
		{"long ago", now - 40*24*hour, now - 40*24*hour, ""},
	}
	for _, c := range cases {
		e := Event{EventTime: c.eventMs, ReceivedTime: c.receiveMs}
		if got := CheckFuture(&e, now, DefaultMaxFuture); got != c.want {
			t.Errorf("%s: CheckFuture = %q, want %q", c.name, got, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range sampleEvents(5, 6) {
		f.Add(uint8(e.Kind), AppendBinary(nil, &e))
	}
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, k uint8, b []byte) {
		kind := Kinds[int(k)%len(Kinds)]
		var e Event
		n, err := d.Decode(kind, b, &e)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		// Whatever decodes survives a round trip through the encoder
		// (bytes may differ: overlong varints are legal input).
		e = e.Clone()
		again := AppendBinary(nil, &e)
		var e2 Event
		if _, err := d.Decode(kind, again, &e2); err != nil || !reflect.DeepEqual(e, e2.Clone()) {
			t.Fatalf("round trip: %v, %v vs %v", err, e, e2)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	evs := sampleEvents(1000, 7)
	var buf []byte
	kinds := make([]Kind, len(evs))
	for i := range evs {
		buf = AppendBinary(buf, &evs[i])
		kinds[i] = evs[i].Kind
	}
	b.Run("specialised", func(b *testing.B) {
		d := NewDecoder()
		var e Event
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			rest := buf
			for _, k := range kinds {
				n, err := d.Decode(k, rest, &e)
				if err != nil {
					b.Fatal(err)
				}
				rest = rest[n:]
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(kinds)), "ns/record")
	})
	b.Run("goavro", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			rest := buf
			for _, k := range kinds {
				native, r, err := SchemaOf(k).Codec.NativeFromBinary(rest)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := FromNative(k, native); err != nil {
					b.Fatal(err)
				}
				rest = r
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(kinds)), "ns/record")
	})
}

// FuzzDecodeSingle: any bytes a Kafka producer sends either decode into a
// record that goes back to the same message (the specification's
// fingerprint, canonical varints) or fail with an error; nothing panics.
// Seeds: every kind's messages, with goavro's fingerprint, truncated, with
// trailing bytes and with a byte flipped.
func FuzzDecodeSingle(f *testing.F) {
	for _, e := range sampleEvents(6, 8) {
		msg := AppendSingle(nil, &e)
		f.Add(msg)
		f.Add(msg[:len(msg)/2])
		f.Add(append(slices.Clone(msg), 0))
		flipped := slices.Clone(msg)
		flipped[len(flipped)/3] ^= 0x40
		f.Add(flipped)
		goavro := slices.Clone(msg)
		binary.LittleEndian.PutUint64(goavro[2:10], SchemaOf(e.Kind).GoavroFingerprint)
		f.Add(goavro)
	}
	f.Add([]byte{})
	f.Add([]byte{0xC3, 0x01})
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, msg []byte) {
		var e Event
		if err := d.DecodeSingle(msg, &e); err != nil {
			return
		}
		e = e.Clone()
		again := AppendSingle(nil, &e)
		var e2 Event
		if err := d.DecodeSingle(again, &e2); err != nil || !reflect.DeepEqual(e, e2.Clone()) {
			t.Fatalf("round trip: %v, %+v vs %+v", err, e, e2)
		}
	})
}
