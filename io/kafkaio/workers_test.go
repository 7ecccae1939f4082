package kafkaio

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lumenhq/lumen/event"
)

// fakeClock is a registry's clock under the test's control.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Two worker processes, each with its registry, read a Read's partitions;
// one partition moves from the first to the second. No report ever
// exceeds the reporting partition's own watermark (so a runner's minimum
// over restrictions is right), a partition read elsewhere holds a worker's
// reports back only until it goes stale, and stale entries and Reads are
// forgotten.
func TestRegistryAcrossWorkers(t *testing.T) {
	const id = "read-workers"
	clock := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	w1, w2 := newWatermarkRegistry(clock.now), newWatermarkRegistry(clock.now)
	a, b, c := TopicPartition{Topic: "t", Partition: 0}, TopicPartition{Topic: "t", Partition: 1}, TopicPartition{Topic: "t", Partition: 2}
	all := []TopicPartition{a, b, c}
	w1.known(id, all)
	w2.known(id, all)
	at := func(min int) int64 { return t0.Add(time.Duration(min) * time.Minute).UnixMilli() }
	state := func(tp TopicPartition, min int) WatermarkState {
		s := initialWatermarkState(id, tp)
		s.WatermarkMs = at(min)
		return s
	}
	check := func(what string, we *watermarkEstimator, want int64) {
		t.Helper()
		got := we.CurrentWatermark().UnixMilli()
		if got > we.state.WatermarkMs {
			t.Errorf("%s: reported %v above the partition's own %v", what, time.UnixMilli(got).UTC(), we.own().UTC())
		}
		if got != want {
			t.Errorf("%s: reported %v, want %v", what, time.UnixMilli(got).UTC(), time.UnixMilli(want).UTC())
		}
	}
	// W1 reads a (at 10:10) and b (10:20); W2 reads c (10:30).
	ea := newWatermarkEstimator(state(a, 10), 0, w1)
	eb := newWatermarkEstimator(state(b, 20), 0, w1)
	ec := newWatermarkEstimator(state(c, 30), 0, w2)
	min := mtime.MinTimestamp.Milliseconds()
	check("w1/b at start", eb, min) // c is known but not read here yet
	check("w2/c at start", ec, min)
	// Once the partitions only known, never read, go stale, each worker
	// reports the minimum over what it reads.
	clock.add(registryTTL + time.Second)
	ea = newWatermarkEstimator(ea.state, 0, w1)
	eb = newWatermarkEstimator(eb.state, 0, w1)
	ec = newWatermarkEstimator(ec.state, 0, w2)
	check("w1/b", eb, at(10))
	check("w2/c", ec, at(30))
	// a moves to W2, its state with it, and advances there to 10:40.
	moved := state(a, 40)
	ea2 := newWatermarkEstimator(moved, 0, w2)
	check("w2/a after the move", ea2, at(30))
	// On W1, a's last entry (10:10) holds b back until it is stale.
	clock.add(registryTTL / 2)
	eb = newWatermarkEstimator(eb.state, 0, w1)
	check("w1/b, a's entry fresh", eb, at(10))
	clock.add(registryTTL)
	eb = newWatermarkEstimator(eb.state, 0, w1)
	check("w1/b, a's entry stale", eb, at(20))
	// Entries stale for ten TTLs are forgotten, and with them the Read.
	clock.add(11 * registryTTL)
	if got := w1.min(id, -1); got != -1 {
		t.Errorf("after 11 TTLs w1 still reports %v", got)
	}
	w1.mu.Lock()
	n := len(w1.reads)
	w1.mu.Unlock()
	if n != 0 {
		t.Errorf("w1 still holds %d Reads", n)
	}
}

// A partition checkpointed on one worker resumes on another: a second
// reader instance with a registry of its own. The records continue exactly
// where the first stopped, and the state that travels with the
// restriction (watermark, end offset) makes the second worker idle when
// caught up without asking the broker; each instance sizes only the
// partitions it has seen.
func TestResumeOnAnotherWorker(t *testing.T) {
	_, brokers := cluster(t, 2)
	var evs []event.Event
	for i := 0; i < 120; i++ {
		evs = append(evs, ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	one := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, MaxBundleRecords: 70})
	two := newReadFn(t, brokers, ReadConfig{Start: StartEarliest})
	one.reg, two.reg = newWatermarkRegistry(time.Now), newWatermarkRegistry(time.Now)
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad)}
	r, _ := one.CreateInitialRestriction(context.Background(), tp)
	we := one.CreateWatermarkEstimator(one.InitialWatermarkEstimatorState(0, r, tp))
	got := &collected{}
	_, rt := process(t, one, tp, r, we, got)
	_, residual, _ := rt.TrySplit(0)
	r = residual.(offsetrange.Restriction)
	if len(got.events) != 70 || r.Start != 70 {
		t.Fatalf("first worker read %d events, residual at %d", len(got.events), r.Start)
	}
	// The runner moves the residual, with its watermark state, to worker two.
	we = two.CreateWatermarkEstimator(one.WatermarkEstimatorState(we))
	_, rt = process(t, two, tp, r, we, got)
	if len(got.events) != 120 || !sameDevices(got.events, evs) {
		t.Fatalf("read %d events across the workers, want the 120 produced once, in order", len(got.events))
	}
	_, residual, _ = rt.TrySplit(0)
	if pc, _ := process(t, two, tp, residual.(offsetrange.Restriction), we, got); !pc.ShouldResume() || time.Since(we.own()) > 3*time.Minute {
		t.Errorf("caught up on worker two: resume %v, watermark %v; want idle", pc.ShouldResume(), we.own())
	}
	if one.RestrictionSize(tp, offsetrange.Restriction{Start: 100, End: unbounded}) != 20 ||
		one.RestrictionSize(TopicPartition{Topic: tp.Topic, Partition: 1}, offsetrange.Restriction{Start: 0, End: unbounded}) != 0 {
		t.Error("a reader sizes a partition by another partition's end offset")
	}
}

func sameDevices(a, b []event.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i].DeviceID) != string(b[i].DeviceID) {
			return false
		}
	}
	return true
}

// Errors retrying cannot fix fail the pipeline with one line that says
// what is wrong: a user the brokers do not authorise to read, and a topic
// that does not exist, when no other topic of the Read does.
func TestPermanentErrorsFailThePipeline(t *testing.T) {
	topic := Topic(prefix, event.AppLoad)
	t.Run("not authorised", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.EnableSASL(), kfake.EnableACLs(),
			kfake.Superuser(SASLPlain, "admin", "admin-pw"),
			kfake.User(SASLPlain, "intruder", "pw", kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "other",
				Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationRead, Allow: true}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		t.Setenv("LUMEN_TEST_KAFKA_PW", "pw")
		p, s := beam.NewPipelineWithRoot()
		Read(s, ReadConfig{Brokers: c.ListenAddrs(), Topics: []string{topic}, Start: StartEarliest, Bounded: true,
			Security: Security{SASL: SASLPlain, User: "intruder", PasswordEnv: "LUMEN_TEST_KAFKA_PW"}}, prefix)
		err = ptest.Run(p)
		t.Logf("the job failed with: %v", firstLine(err))
		if err == nil || !strings.Contains(err.Error(), "AUTHORIZATION_FAILED") {
			t.Errorf("reading without authorisation: %v, want an authorization failure", err)
		}
	})
	t.Run("missing topic", func(t *testing.T) {
		_, brokers := cluster(t, 1)
		p, s := beam.NewPipelineWithRoot()
		Read(s, ReadConfig{Brokers: brokers, Topics: []string{prefix + "no_such_kind"}, MissingTopicTimeout: time.Second,
			DiscoveryInterval: 200 * time.Millisecond}, prefix)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := prism.Execute(ctx, p) // unbounded: a streaming runner
		t.Logf("the job failed with: %v", firstLine(err))
		if err == nil || !strings.Contains(err.Error(), `no topic with prefix "lumen." exists`) {
			t.Errorf("reading a missing topic: %v, want it to fail saying no topic of the prefix exists", err)
		}
	})
}

// firstLine is the line of an error that names the cause.
func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.Contains(l, "kafkaio:") {
			return strings.TrimSpace(l)
		}
	}
	return strings.SplitN(err.Error(), "\n", 2)[0]
}

// A bad configuration fails when the graph is built, naming the problem.
func TestReadValidatesAtConstruction(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "sasl") {
			t.Errorf("Read with a bad SASL mechanism: recovered %v, want a panic naming sasl", r)
		}
	}()
	_, s := beam.NewPipelineWithRoot()
	Read(s, ReadConfig{Brokers: []string{"b:9092"}, Topics: []string{"t"}, Security: Security{SASL: "KERBEROS", User: "u"}}, prefix)
}

// The reader speaks TLS and SASL/SCRAM: a bounded read through a
// TLS-only, SCRAM-only cluster reads every event.
func TestReadOverTLSWithSCRAM(t *testing.T) {
	dir := t.TempDir()
	caFile, serverCfg := selfSigned(t, dir)
	topic := Topic(prefix, event.Crash)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.TLS(serverCfg), kfake.EnableSASL(),
		kfake.Superuser(SASLScramSHA256, "lumen", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Setenv(DefaultPasswordEnv, "s3cret")
	sec := Security{TLS: true, CAFile: caFile, ServerName: "localhost", SASL: SASLScramSHA256, User: "lumen"}
	opts, err := sec.Opts()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := NewProducer(c.ListenAddrs(), prefix, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		e := ev(event.Crash, i, t0)
		pr.Produce(context.Background(), &e)
	}
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	events, dead, _ := Read(s, ReadConfig{Brokers: c.ListenAddrs(), Topics: []string{topic}, Start: StartEarliest, Bounded: true, Security: sec}, prefix)
	passert.Count(s, events, "events", 25)
	passert.Empty(s, dead)
	ptest.RunAndValidate(t, p)

	// Without the password on the worker, Setup says which variable is missing.
	os.Unsetenv(DefaultPasswordEnv)
	if _, err := sec.Opts(); err == nil || !strings.Contains(err.Error(), DefaultPasswordEnv) {
		t.Errorf("without the password variable: %v", err)
	}
}

// selfSigned writes a CA certificate for localhost and returns its path
// and a server TLS config using it.
func selfSigned(t *testing.T, dir string) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// The start-offset retry gives up when its context does.
func TestStartOffsetRetryHonoursContext(t *testing.T) {
	_, brokers := cluster(t, 1)
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.CreateInitialRestriction(ctx, TopicPartition{Topic: Topic(prefix, event.AppLoad), Partition: 7}) // no such partition
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("CreateInitialRestriction of a missing partition with a 300 ms context: %v after %v", err, time.Since(start))
	}
}
