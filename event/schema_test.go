package event

import "testing"

// The numbers DESIGN §2 measured: the specification's fingerprint of AppLoad,
// and the different one goavro computes.
func TestFingerprints(t *testing.T) {
	s := SchemaOf(AppLoad)
	if got, want := s.Fingerprint, uint64(96540848840188261); got != want {
		t.Errorf("spec fingerprint = %d, want %d (canonical %s)", got, want, s.Canonical)
	}
	if got, want := s.GoavroFingerprint, uint64(6334415681048809525); got != want {
		t.Errorf("goavro fingerprint = %d, want %d", got, want)
	}
	want := `{"name":"lumen.events.AppLoad","type":"record","fields":[{"name":"app_id","type":"string"},{"name":"app_version","type":"string"},{"name":"platform","type":"string"},{"name":"device_id","type":"bytes"},{"name":"event_time","type":"long"},{"name":"received_time","type":"long"}]}`
	if s.Canonical != want {
		t.Errorf("canonical form\n got %s\nwant %s", s.Canonical, want)
	}
	seen := map[uint64]Kind{}
	for _, k := range Kinds {
		fp := SchemaOf(k).Fingerprint
		if other, dup := seen[fp]; dup {
			t.Errorf("%s and %s share fingerprint %d", k, other, fp)
		}
		seen[fp] = k
		if got, ok := KindOfCanonical(SchemaOf(k).Canonical); !ok || got != k {
			t.Errorf("KindOfCanonical(%s) = %v, %v", k, got, ok)
		}
	}
}

// Test vectors from the Avro specification's reference implementation
// (Java SchemaNormalization tests): fingerprints of primitive schemas.
func TestFingerprint64Vectors(t *testing.T) {
	cases := []struct {
		in   string
		want int64
	}{
		{`"null"`, 7195948357588979594},
		{`"boolean"`, -6970731678124411036},
		{`"int"`, 8247732601305521295},
		{`"long"`, -3434872931120570953},
		{`"string"`, -8142146995180207161},
		{`"bytes"`, 5746618253357095269},
	}
	for _, c := range cases {
		if got := int64(Fingerprint64([]byte(c.in))); got != c.want {
			t.Errorf("Fingerprint64(%s) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestCanonicalFormNormalises(t *testing.T) {
	a := `{"type":"record","name":"X","namespace":"a.b","doc":"d","fields":[
	  {"name":"f","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
	  {"name":"g","type":["null",{"type":"string"}]},
	  {"name":"h","type":{"type":"enum","name":"E","symbols":["A","B"]}},
	  {"name":"i","type":"E"},
	  {"name":"j","type":{"type":"fixed","name":"c.F","size":16}},
	  {"name":"k","type":{"type":"map","values":{"type":"array","items":"int"}}}]}`
	want := `{"name":"a.b.X","type":"record","fields":[{"name":"f","type":"long"},{"name":"g","type":["null","string"]},{"name":"h","type":{"name":"a.b.E","type":"enum","symbols":["A","B"]}},{"name":"i","type":"a.b.E"},{"name":"j","type":{"name":"c.F","type":"fixed","size":16}},{"name":"k","type":{"type":"map","values":{"type":"array","items":"int"}}}]}`
	got, err := CanonicalForm([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}
