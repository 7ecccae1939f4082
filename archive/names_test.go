package archive

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
)

func ExampleObjectName() {
	fmt.Println(ObjectName("lumen.app_load", 2, 1_234_567))
	topic, partition, first, ok := ParseObjectName("lumen.app_load-p2-o00000000000001234567.avro")
	fmt.Println(topic, partition, first, ok)
	// Output:
	// lumen.app_load-p2-o00000000000001234567.avro
	// lumen.app_load 2 1234567 true
}

func TestObjectName(t *testing.T) {
	cases := []struct {
		topic string
		part  int32
		first int64
	}{
		{"lumen.app_load", 0, 0},
		{"lumen.crash", 17, 9_223_372_036_854_775_807},
		{"weird-p3-o5.topic", 3, 42}, // a topic that looks like a name
		{"x-p1-o00000000000000000001.avro", 1, 7},
	}
	for _, c := range cases {
		name := ObjectName(c.topic, c.part, c.first)
		if name != ObjectName(c.topic, c.part, c.first) {
			t.Fatalf("%s: not deterministic", name)
		}
		if !strings.HasSuffix(name, fmt.Sprintf("-o%020d.avro", c.first)) {
			t.Errorf("%s: offset not zero-padded to 20 digits", name)
		}
		topic, part, first, ok := ParseObjectName(name)
		if !ok || topic != c.topic || part != c.part || first != c.first {
			t.Errorf("ParseObjectName(%q) = %q %d %d %v, want %q %d %d", name, topic, part, first, ok, c.topic, c.part, c.first)
		}
	}
	// Names sort by offset within a partition.
	if a, b := ObjectName("t", 0, 99), ObjectName("t", 0, 100); a >= b {
		t.Errorf("%s sorts after %s", a, b)
	}
	for _, bad := range []string{
		"part-00000.avro", "t-p0-o1.avro", "t-p0-o0000000000000000001.avro", // 19 digits
		"t-p0-o000000000000000000001.avro", "t-p0-o00000000000000000001.avro.tmp-1", "t-px-o00000000000000000001.avro",
		"-p0-o00000000000000000001.avro", "t-p99999999999-o00000000000000000001.avro",
	} {
		if _, _, _, ok := ParseObjectName(bad); ok {
			t.Errorf("ParseObjectName(%q) accepted it", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	c.RollRecords, c.Start, c.Codec = -1, kafkaio.StartCommitted, 9
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"brokers", "output", "start", "codec", "roll_records"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	c = Config{Brokers: []string{"b:9092"}, Output: "/tmp/x/"}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Group != DefaultGroup || c.Start != kafkaio.StartEarliest || c.RollBytes != 64<<20 || c.RollRecords != 1_000_000 ||
		c.RollInterval != time.Minute || c.Output != "/tmp/x" || len(c.topics()) != len(event.Kinds) {
		t.Errorf("defaults: %+v", c)
	}
}
