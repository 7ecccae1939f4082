package kafkaio_test

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
)

// Produce lumen events to Kafka, then read them back with a bounded Read:
// the valid events, the dead letters (here, one message that is not Avro)
// and the events beyond the lateness horizon.
func ExampleRead() {
	c, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, kafkaio.Topic(kafkaio.DefaultTopicPrefix, event.AppLoad)))
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx := context.Background()
	p, _ := kafkaio.NewProducer(brokers, kafkaio.DefaultTopicPrefix)
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		p.Produce(ctx, &event.Event{Kind: event.AppLoad, AppID: "com.example", AppVersion: "1.0", Platform: "ios",
			DeviceID: []byte(fmt.Sprint("device-", i)), EventTime: at.UnixMilli(), ReceivedTime: at.UnixMilli()})
	}
	p.ProduceRaw(ctx, kafkaio.Topic(kafkaio.DefaultTopicPrefix, event.AppLoad), nil, []byte("not avro"), at)
	fmt.Println("produced:", p.Close())

	pipeline, s := beam.NewPipelineWithRoot()
	events, dead, late := kafkaio.Read(s, kafkaio.ReadConfig{Brokers: brokers, Start: kafkaio.StartEarliest, Bounded: true,
		Topics: []string{kafkaio.Topic(kafkaio.DefaultTopicPrefix, event.AppLoad)}}, kafkaio.DefaultTopicPrefix)
	passert.Count(s, events, "events", 5)
	passert.Count(s, dead, "dead letters", 1)
	passert.Empty(s, late)
	fmt.Println("read:", ptest.Run(pipeline))
	// Output:
	// produced: <nil>
	// read: <nil>
}
