package raw

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// Files written by Java's Avro implementation (avro-tools from Maven
// Central, via testing/services/avro-tools) are read exactly, for each codec
// Java writes, with the pinned schema and with a writer schema that has
// another field order and an extra field. make test sets
// LUMEN_TEST_AVRO_TOOLS.
func TestReadJavaAvroFiles(t *testing.T) {
	tool := servicetest.Addr(t, "LUMEN_TEST_AVRO_TOOLS")
	dir := t.TempDir()
	evs := testEvents(event.Crash, 3000, 21)
	// Bytes cover every value, so the JSON encoding's byte strings are
	// exercised (Avro JSON encodes bytes as ISO-8859-1 code points).
	for i := range evs {
		evs[i].DeviceID = []byte{byte(i), byte(i >> 8), 0x00, 0xff, 0x7f, 0x80}
	}
	reordered := `{"type":"record","name":"Crash","namespace":"com.java.collector","fields":[
	  {"name":"signature","type":"string"},
	  {"name":"device_id","type":"bytes"},
	  {"name":"collector","type":"string","default":"x"},
	  {"name":"received_time","type":{"type":"long","logicalType":"timestamp-millis"}},
	  {"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
	  {"name":"platform","type":"string"},
	  {"name":"app_version","type":"string"},
	  {"name":"app_id","type":"string"}]}`
	schemas := map[string]string{"pinned": event.SchemaOf(event.Crash).JSON, "reordered": reordered}
	for sname, schema := range schemas {
		schemaFile := filepath.Join(dir, sname+".avsc")
		os.WriteFile(schemaFile, []byte(schema), 0o644)
		var js strings.Builder
		for _, e := range evs {
			rec := map[string]any{"app_id": e.AppID, "app_version": e.AppVersion, "platform": e.Platform,
				"device_id": latin1(e.DeviceID), "event_time": e.EventTime, "received_time": e.ReceivedTime, "signature": e.Signature}
			if sname == "reordered" {
				rec["collector"] = "collector-7"
			}
			b, _ := json.Marshal(rec)
			js.Write(b)
			js.WriteByte('\n')
		}
		in := filepath.Join(dir, sname+".json")
		os.WriteFile(in, []byte(js.String()), 0o644)
		for _, codec := range []string{"null", "deflate", "snappy", "zstandard"} {
			t.Run(sname+"/"+codec, func(t *testing.T) {
				out := filepath.Join(dir, sname+"-"+codec+".avro")
				cmd := exec.Command(tool, "fromjson", "--codec", codec, "--schema-file", schemaFile, in)
				f, _ := os.Create(out)
				cmd.Stdout = f
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("avro-tools: %v\n%s", err, stderr.String())
				}
				f.Close()
				c := readAllSplits(t, whole(t, out, event.Crash))
				if len(c.dead) != 0 {
					t.Fatalf("dead letters: %v", c.dead)
				}
				sameEvents(t, c.evs, evs)
			})
		}
	}
}

// latin1 renders bytes as Avro's JSON encoding does: one code point per byte.
func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// Java's Avro reads what lumen writes, for each codec lumen writes.
func TestJavaReadsLumenFiles(t *testing.T) {
	tool := servicetest.Addr(t, "LUMEN_TEST_AVRO_TOOLS")
	evs := testEvents(event.HandledException, 2000, 23)
	for _, codec := range []avroio.Codec{avroio.CodecNull, avroio.CodecDeflate, avroio.CodecSnappy} {
		t.Run(codec.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "lumen.avro")
			writeFile(t, p, event.HandledException, evs, avroio.WithCodec(codec), avroio.WithBlockSize(8192))
			out, err := exec.Command(tool, "tojson", p).Output()
			if err != nil {
				t.Fatalf("avro-tools tojson: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(evs) {
				t.Fatalf("Java read %d records, want %d", len(lines), len(evs))
			}
			for i, line := range lines {
				var rec struct {
					AppID     string `json:"app_id"`
					DeviceID  string `json:"device_id"`
					EventTime int64  `json:"event_time"`
					Signature string `json:"signature"`
				}
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				e := evs[i]
				if rec.AppID != e.AppID || rec.DeviceID != latin1(e.DeviceID) || rec.EventTime != e.EventTime || rec.Signature != e.Signature {
					t.Fatalf("record %d: Java read %+v, wrote %v", i, rec, e)
				}
			}
		})
	}
}
