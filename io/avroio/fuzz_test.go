package avroio

import (
	"bytes"
	"slices"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
)

// seedFiles are container files as they come: lumen's writer with every
// codec it writes, goavro's writer, and each of them damaged (truncated,
// a byte flipped in the header and in a block, a sync marker broken).
func seedFiles(t testing.TB) [][]byte {
	var files [][]byte
	evs := testEvents(event.Crash, 40, 11)
	for _, c := range []Codec{CodecNull, CodecDeflate, CodecSnappy} {
		var buf bytes.Buffer
		w, err := NewEventWriter(&buf, event.Crash, WithCodec(c), WithBlockSize(10))
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			evs[i].Signature = "sig"
			if err := w.AppendEvent(&evs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files = append(files, buf.Bytes())
	}
	var buf bytes.Buffer
	ow, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: event.SchemaOf(event.Crash).JSON})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := ow.Append([]any{event.ToNative(&evs[i])}); err != nil {
			t.Fatal(err)
		}
	}
	files = append(files, buf.Bytes())
	for _, f := range slices.Clone(files) {
		files = append(files, f[:len(f)/2], f[:len(f)-1])
		for _, at := range []int{8, len(f) / 2, len(f) - 3} {
			d := slices.Clone(f)
			d[at] ^= 0x5a
			files = append(files, d)
		}
	}
	return append(files, nil, []byte("Obj\x01"))
}

// FuzzRead: the container scanner and the record decoder never panic and
// never fail on bytes in memory (damage is reported, not returned), every
// event they hand out is of the file's kind and valid, and what they count
// adds up: each record read is either valid or damaged.
func FuzzRead(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		src := Source{Path: "fuzz.avro", Kind: event.Crash, Size: int64(len(b)), End: int64(len(b)), Data: b}
		var valid int64
		st, err := NewReader().Read(src, func(evs []event.Event) {
			for i := range evs {
				if evs[i].Kind != event.Crash {
					t.Fatalf("an event of kind %v from a crash file", evs[i].Kind)
				}
				if reason := event.Validate(&evs[i]); reason != "" {
					t.Fatalf("an invalid event handed out (%s): %+v", reason, evs[i])
				}
			}
			valid += int64(len(evs))
		}, func(Damage) {})
		if err != nil {
			t.Fatalf("reading bytes in memory failed: %v", err)
		}
		if st.Valid != valid || st.Valid > st.Records {
			t.Fatalf("stats %+v, %d events handed out", st, valid)
		}
	})
}
