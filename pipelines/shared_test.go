package pipelines

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/kafkaio"
	_ "github.com/lumenhq/lumen/serving/sqlitestore" // sqlite: stores
)

var combineType = reflect.TypeOf(aggregate.CombineFn{})

// combineUses lists the transforms of p that apply aggregate.CombineFn: as
// a CombineFn, or as a DoFn field whose methods the DoFn calls.
func combineUses(t *testing.T, p *beam.Pipeline) []string {
	t.Helper()
	edges, _, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	var uses []string
	for _, e := range edges {
		switch e.Op {
		case graph.Combine:
			if recv := reflect.TypeOf(e.CombineFn.Recv); recv != nil && recv.Elem() == combineType {
				uses = append(uses, "CombinePerKey("+recv.String()+") in "+e.Scope().String())
			}
		case graph.ParDo:
			recv := reflect.TypeOf(e.DoFn.Recv)
			if recv == nil || recv.Kind() != reflect.Pointer || recv.Elem().Kind() != reflect.Struct {
				continue
			}
			for i := 0; i < recv.Elem().NumField(); i++ {
				if f := recv.Elem().Field(i); f.Type == combineType {
					uses = append(uses, "ParDo("+recv.String()+")."+f.Name+" in "+e.Scope().String())
				}
			}
		}
	}
	return uses
}

// TestLayersShareTheCombine prints, from the built graphs, where each layer
// applies aggregate.CombineFn. The batch merges its readers' partials with
// it as the CombineFn of a CombinePerKey; the stream's Kafka reader builds
// its partials with its methods, and its minute windows merge them with its
// methods after a GroupByKey (prism loses pane timing after CombinePerKey:
// transforms.TestPrismCombineLosesPaneTiming).
func TestLayersShareTheCombine(t *testing.T) {
	bp, bs := beam.NewPipelineWithRoot()
	if err := BuildBatch(bs, BatchConfig{Input: t.TempDir(), AsOf: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Store: "sqlite:x.db"}); err != nil {
		t.Fatal(err)
	}
	sp, ss := beam.NewPipelineWithRoot()
	if err := BuildStream(ss, StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: []string{"127.0.0.1:1"}}, Store: "sqlite:x.db"}); err != nil {
		t.Fatal(err)
	}
	batch, stream := combineUses(t, bp), combineUses(t, sp)
	t.Logf("batch graph:\n  %s", strings.Join(batch, "\n  "))
	t.Logf("stream graph:\n  %s", strings.Join(stream, "\n  "))
	has := func(uses []string, what string) bool {
		for _, u := range uses {
			if strings.Contains(u, what) {
				return true
			}
		}
		return false
	}
	if !has(batch, "CombinePerKey(*aggregate.CombineFn)") {
		t.Error("the batch graph does not merge with CombinePerKey(aggregate.CombineFn)")
	}
	if !has(stream, "readPartialsFn") || !has(stream, "paneMergeFn") {
		t.Error("the stream graph does not build and merge its partials with aggregate.CombineFn")
	}
}
