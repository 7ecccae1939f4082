// Package kafkatest gives tests (and benchmarks) a Kafka to talk to: the
// real broker of LUMEN_TEST_KAFKA when testing/services runs one, else an
// in-process kfake cluster, with lumen's topics created under a prefix of
// the caller's own.
package kafkatest

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// Cluster returns the brokers of LUMEN_TEST_KAFKA if set, else (outside
// make test, which requires the real broker) of an in-process kfake cluster
// closed with the test, and a topic prefix of the
// test's own under which the three kind topics and the dead-letter topic
// exist with partitions each.
func Cluster(t *testing.T, partitions int32) (brokers []string, prefix string) {
	t.Helper()
	return ClusterWithout(t, partitions)
}

// ClusterWithout is Cluster, but the topics of the missing kinds are not
// created: a fresh install where nobody has produced those kinds yet.
// Create them later with CreateTopic.
func ClusterWithout(t *testing.T, partitions int32, missing ...event.Kind) (brokers []string, prefix string) {
	t.Helper()
	return cluster(t, partitions, servicetest.Use, missing...)
}

// DisturbedCluster is Cluster on the real broker only, for a test that
// stops it (RestartBroker): it holds the broker to itself, waiting until
// every other test of every test binary is done with it, and they wait
// for it.
func DisturbedCluster(t *testing.T, partitions int32) (brokers []string, prefix string) {
	t.Helper()
	servicetest.Addr(t, "LUMEN_TEST_KAFKA_PID")
	return cluster(t, partitions, servicetest.Disturb)
}

func cluster(t *testing.T, partitions int32, lock func(testing.TB, string), missing ...event.Kind) (brokers []string, prefix string) {
	t.Helper()
	prefix = Prefix(strings.ReplaceAll(t.Name(), "/", "_"))
	if addr := os.Getenv("LUMEN_TEST_KAFKA"); addr != "" {
		lock(t, "kafka")
		brokers = []string{addr}
		t.Logf("real Kafka at %s", addr)
	} else {
		if os.Getenv(servicetest.Required) != "" {
			servicetest.Missing(t, "kafka", "LUMEN_TEST_KAFKA is not set, and make test does not fall back to kfake")
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		brokers = c.ListenAddrs()
		t.Log("kfake (set LUMEN_TEST_KAFKA for a real broker)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics := []string{kafkaio.DeadLetterTopic(prefix)}
	for _, k := range event.Kinds {
		if !slices.Contains(missing, k) {
			topics = append(topics, kafkaio.Topic(prefix, k))
		}
	}
	if err := CreateTopic(ctx, brokers, partitions, topics...); err != nil {
		t.Fatal(err)
	}
	return brokers, prefix
}

// Prefix is a topic prefix unique to this moment, naming its user.
func Prefix(name string) string {
	return fmt.Sprintf("%s-%d.", name, time.Now().UnixNano()%1e9)
}

// CreateTopics creates the three kind topics under prefix and the
// dead-letter topic, with partitions each.
func CreateTopics(ctx context.Context, brokers []string, prefix string, partitions int32) error {
	topics := []string{kafkaio.DeadLetterTopic(prefix)}
	for _, k := range event.Kinds {
		topics = append(topics, kafkaio.Topic(prefix, k))
	}
	return CreateTopic(ctx, brokers, partitions, topics...)
}

// CreateTopic creates topics with partitions each.
//
// On the real broker, the topics accept a record stamped at any time, as
// kfake's do and as Kafka's did before 3.6: a Kafka 4 broker refuses a
// record stamped over an hour ahead (message.timestamp.after.max.ms), and
// the tests of lumen's own bound on future times need such a record to
// reach the consumer. And they keep every record whatever its stamp: the
// broker deletes a segment once its newest record is older than the
// retention (testing/services sets 24 hours), judged by the records'
// timestamps, and generated traffic is stamped days back. Its whole log
// went at the broker's next retention check (every 5 minutes), in the
// middle of a test: a consumer that had not read it found the log start
// at its end, and read nothing (TestArchiveEndToEnd failed so, by chance,
// in CI on 876aa9b and again on 5f3f74c).
func CreateTopic(ctx context.Context, brokers []string, partitions int32, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	var configs map[string]*string
	if real := os.Getenv("LUMEN_TEST_KAFKA"); real != "" && slices.Equal(brokers, []string{real}) {
		configs = map[string]*string{
			"message.timestamp.after.max.ms": kmsg.StringPtr(strconv.FormatInt(math.MaxInt64, 10)),
			"retention.ms":                   kmsg.StringPtr("-1"),
		}
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, configs, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("kafkatest: create topics %v: %w", topics, err)
	}
	return nil
}
