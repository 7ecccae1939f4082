package cassandrastore

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/storetest"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// testURL returns the URL of a fresh keyspace on the test cluster, or skips.
func testURL(t *testing.T, params string) string {
	addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	servicetest.Use(t, "cassandra")
	return fmt.Sprintf("cassandra://%s/%s?%s", addr, Keyspace(t), params)
}

var seq atomic.Int64

// Keyspace names a keyspace unique to this test run.
func Keyspace(t *testing.T) string {
	return fmt.Sprintf("lumen_t%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
}

func TestCassandraConformance(t *testing.T) {
	base := testURL(t, "")
	storetest.Run(t, func(t *testing.T) serving.Store {
		url := base[:strings.LastIndex(base, "/")+1] + Keyspace(t) + "?consistency=ONE"
		st, err := serving.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}
