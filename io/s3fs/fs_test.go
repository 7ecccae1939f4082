package s3fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/s3test"
)

// Every test runs against gofakes3 and, under make test, moto_server.
func endpoints(t *testing.T, fn func(t *testing.T, e *s3test.Endpoint)) {
	t.Run("gofakes3", func(t *testing.T) { fn(t, s3test.Fake(t)) })
	t.Run("moto", func(t *testing.T) { fn(t, s3test.Moto(t)) })
}

var ctx = context.Background()

func put(t *testing.T, f *s3fs.FS, p string, b []byte) {
	t.Helper()
	w, err := f.CreateAtomic(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestObjects(t *testing.T) {
	endpoints(t, func(t *testing.T, e *s3test.Endpoint) {
		f := s3fs.New(e.Options)
		small := e.Root("a/small.bin")
		big := e.Root("a/big.bin")

		// Nothing is visible before Close, for a PUT or a multipart upload.
		w, _ := f.CreateAtomic(ctx, small)
		w.Write([]byte("hello, s3"))
		if _, err := f.Size(ctx, small); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("object visible before Close: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 2*s3fs.PartSize+12345)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		w, _ = f.CreateAtomic(ctx, big)
		for off := 0; off < len(data); off += 1 << 20 {
			w.Write(data[off:min(off+1<<20, len(data))])
		}
		if _, err := f.Size(ctx, big); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("multipart object visible before Close: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if n, err := f.Size(ctx, big); err != nil || n != int64(len(data)) {
			t.Fatalf("size %d, %v", n, err)
		}
		rc, err := f.OpenReadRange(ctx, big, s3fs.PartSize-10, 100)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data[s3fs.PartSize-10:s3fs.PartSize+90]) {
			t.Error("ranged read returned the wrong bytes")
		}
		rc, _ = f.OpenRead(ctx, small)
		got, _ = io.ReadAll(rc)
		rc.Close()
		if string(got) != "hello, s3" {
			t.Errorf("read %q", got)
		}
		// An aborted upload leaves nothing behind.
		aw, _ := f.CreateAtomic(ctx, e.Root("a/aborted.bin"))
		aw.Write(data)
		aw.(interface{ Abort() }).Abort()
		if _, err := f.Size(ctx, e.Root("a/aborted.bin")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("aborted object exists: %v", err)
		}
		// Missing objects are fs.ErrNotExist, so readers dead-letter them.
		if _, err := f.OpenRead(ctx, e.Root("a/missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing object: %v", err)
		}
		names, err := f.List(ctx, e.Root("a/*.bin"))
		if err != nil || strings.Join(names, " ") != big+" "+small {
			t.Errorf("List = %v, %v", names, err)
		}
		if err := f.Rename(ctx, small, e.Root("b/moved.bin")); err != nil {
			t.Fatal(err)
		}
		dirs, err := f.ListDirs(ctx, e.Root(""))
		if err != nil || strings.Join(dirs, " ") != e.Root("a")+"/ "+e.Root("b")+"/" {
			t.Errorf("ListDirs = %v, %v", dirs, err)
		}
	})
}

// A custom endpoint means path-style requests (host/bucket/key) unless
// forced off. (With an IP address the SDK falls back to path style by
// itself, so the endpoint is named by host name.)
func TestPathStyle(t *testing.T) {
	e := s3test.Fake(t)
	e.Options.Endpoint = strings.Replace(e.Options.Endpoint, "127.0.0.1", "localhost", 1)
	f := s3fs.New(e.Options)
	put(t, f, e.Root("k"), []byte("x"))
	for _, u := range e.Counter.URLs() {
		pu, _ := url.Parse(u)
		if !strings.HasPrefix(pu.Path, "/"+e.Bucket+"/") {
			t.Errorf("request %s is not path-style", u)
		}
	}
	e.Counter.Reset()
	off := e.Options
	off.PathStyle = s3fs.PathStyleOff
	c := s3fs.New(off)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c.Size(cctx, e.Root("k")) // fails: bucket.127.0.0.1 does not resolve
	for _, u := range e.Counter.URLs() {
		if pu, _ := url.Parse(u); !strings.HasPrefix(pu.Host, e.Bucket+".") {
			t.Errorf("forced virtual-hosted request %s", u)
		}
	}
}

// Listing a 30-day window asks for each kind's dt= prefix of each day, with
// pagination, and never lists the bucket.
func TestListWindowUsesPartitionPrefixes(t *testing.T) {
	endpoints(t, func(t *testing.T, e *s3test.Endpoint) {
		f := s3fs.New(e.Options)
		s3fs.Configure(e.Options)
		root := e.Root("lake")
		first := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
		days, perHour := 30, 2
		if e.Name == "moto" {
			days = 5 // moto is slow to fill; the shape is the same
		}
		want := 0
		for d := -2; d < days+2; d++ { // two days either side are outside the window
			for h := 0; h < 24; h++ {
				for _, k := range event.Kinds {
					for i := 0; i < perHour; i++ {
						p := fmt.Sprintf("%s/part-%d.avro", raw.HourDir(root, k, first.AddDate(0, 0, d).Add(time.Duration(h)*time.Hour)), i)
						put(t, f, p, []byte("x"))
						if d >= 0 && d < days {
							want++
						}
					}
				}
			}
		}
		put(t, f, root+"/raw/app_load/_SUCCESS", nil)
		e.Counter.Reset()
		files, err := raw.ListWindow(ctx, root, first, first.AddDate(0, 0, days-1), raw.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != want {
			t.Errorf("listed %d files, want %d", len(files), want)
		}
		// 48 keys per kind and day: one page each.
		if got := e.Counter.Count("LIST"); got != 3*days {
			t.Errorf("%d LIST requests, want %d (one per kind and day)", got, 3*days)
		}
		if n := e.Counter.Count("GET") + e.Counter.Count("HEAD"); n != 0 {
			t.Errorf("%d GET/HEAD requests while listing", n)
		}
		for _, u := range e.Counter.URLs() {
			pu, _ := url.Parse(u)
			if !strings.Contains(pu.Query().Get("prefix"), "/dt=") {
				t.Errorf("listing without a partition prefix: %s", u)
			}
		}
	})
}
