// Package s3test gives tests an S3 endpoint: gofakes3 in process (always
// available) or the moto_server that testing/services starts
// (LUMEN_TEST_S3), with a fresh bucket and a transport that counts
// requests.
package s3test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// Endpoint is an S3 endpoint with a bucket ready for a test.
type Endpoint struct {
	Name    string // "gofakes3" or "moto"
	URL     string
	Bucket  string
	Counter *Counter
	Options s3fs.Options
}

// Root is s3://bucket/prefix.
func (e *Endpoint) Root(prefix string) string {
	return "s3://" + e.Bucket + "/" + strings.Trim(prefix, "/")
}

// Fake starts gofakes3 in process.
func Fake(t testing.TB) *Endpoint {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	return setUp(t, "gofakes3", srv.URL)
}

// Moto returns the moto_server of LUMEN_TEST_S3, or skips.
func Moto(t testing.TB) *Endpoint {
	t.Helper()
	return setUp(t, "moto", servicetest.Addr(t, "LUMEN_TEST_S3"))
}

var bucketSeq atomic.Int64

func setUp(t testing.TB, name, url string) *Endpoint {
	t.Helper()
	// The SDK's standard chain: fake static credentials, and no instance
	// metadata lookups on a machine without it.
	t.Setenv("AWS_ACCESS_KEY_ID", "lumen-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "lumen-test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// A CA bundle can only be applied to the SDK's own HTTP client, and the
	// test endpoints are plain HTTP anyway.
	t.Setenv("AWS_CA_BUNDLE", "")
	c := &Counter{base: http.DefaultTransport}
	e := &Endpoint{Name: name, URL: url, Counter: c,
		Bucket:  fmt.Sprintf("lumen-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6, bucketSeq.Add(1)),
		Options: s3fs.Options{Endpoint: url}}
	// Every S3 client of the process counts its requests here.
	s3fs.SetHTTPClient(&http.Client{Transport: c})
	t.Cleanup(func() { s3fs.SetHTTPClient(nil) })
	cl, err := s3fs.NewClient(context.Background(), e.Options, &http.Client{Transport: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(e.Bucket)}); err != nil {
		t.Fatalf("create bucket on %s: %v", name, err)
	}
	c.Reset()
	return e
}

// Counter is an http.RoundTripper that counts requests by kind.
type Counter struct {
	base  http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
	urls  []string
	paths map[string]int // "KIND path" → requests
}

// RoundTrip counts and forwards a request.
func (c *Counter) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := r.Method
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
		kind = "LIST"
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[kind]++
	if c.paths == nil {
		c.paths = map[string]int{}
	}
	c.paths[kind+" "+r.URL.Path]++
	if len(c.urls) < 10000 {
		c.urls = append(c.urls, r.URL.String())
	}
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// Count returns how many requests of a kind (GET, PUT, HEAD, LIST, …) went out.
func (c *Counter) Count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[kind]
}

// CountPaths returns how many requests of a kind went to paths containing
// sub (e.g. GETs of one day's raw objects: "/raw/app_load/dt=2026-11-20/").
func (c *Counter) CountPaths(kind, sub string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.paths {
		if strings.HasPrefix(k, kind+" ") && strings.Contains(k, sub) {
			n += v
		}
	}
	return n
}

// URLs returns the first requests' URLs.
func (c *Counter) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.urls...)
}

// Reset zeroes the counts.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.urls, c.paths = nil, nil, nil
}
