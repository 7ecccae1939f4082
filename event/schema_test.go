package event

import (
	"encoding/binary"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenhq/lumen/testing/servicetest"
)

// TestFingerprintsOfJavaAvro: the canonical form and the CRC-64-AVRO
// fingerprint of every pinned schema are Java Avro's (SchemaNormalization,
// through avro-tools' canonical and fingerprint commands), computed here
// rather than copied. make test sets LUMEN_TEST_AVRO_TOOLS.
func TestFingerprintsOfJavaAvro(t *testing.T) {
	tool := servicetest.Addr(t, "LUMEN_TEST_AVRO_TOOLS")
	for _, k := range Kinds {
		file := filepath.Join("schemas", k.String()+".avsc")
		out, err := exec.Command(tool, "fingerprint", file).Output()
		if err != nil {
			t.Fatalf("avro-tools fingerprint %s: %v", file, err)
		}
		// One line per file: the fingerprint's bytes in hex, little-endian
		// (the order of single-object encoding), then the file name.
		var fp []byte
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[1] == file {
				fp, err = hex.DecodeString(f[0])
			}
		}
		if err != nil || len(fp) != 8 {
			t.Fatalf("avro-tools fingerprint %s printed %q", file, out)
		}
		if got, want := SchemaOf(k).Fingerprint, binary.LittleEndian.Uint64(fp); got != want {
			t.Errorf("%s: fingerprint %d, Java Avro's %d", k, got, want)
		}
		canon, err := exec.Command(tool, "canonical", file, "-").Output()
		if err != nil {
			t.Fatalf("avro-tools canonical %s: %v", file, err)
		}
		if got, want := SchemaOf(k).Canonical, strings.TrimSpace(string(canon)); got != want {
			t.Errorf("%s: canonical form\n got %s\nwant %s (Java Avro's)", k, got, want)
		}
	}
}

// TestFingerprints: the kinds' schemas are told apart by their canonical
// forms and fingerprints.
func TestFingerprints(t *testing.T) {
	s := SchemaOf(AppLoad)
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
