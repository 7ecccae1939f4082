package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"golang.org/x/sync/errgroup"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
)

// benchS3 reads the production small-files shape from S3 with lumen's
// reader and with a sequential one-object-at-a-time baseline, in one run.
func benchS3(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench s3", flag.ContinueOnError)
	events := fs.Int("events", 7_000_000, "Events to generate.")
	filesPerHour := fs.Int("files_per_hour", 200, "Objects per arrival hour (200 x 24 x 30 = 144,000).")
	days := fs.Int("days", 30, "Days of data (fewer for slow servers such as moto).")
	endpoint := fs.String("endpoint", "", "S3 endpoint (e.g. moto's); default: gofakes3 in this process.")
	bigMB := fs.Int("big_mb", 256, "Also read one object of about this many MiB through ranged splits (0: skip).")
	cpuprofile := fs.String("cpuprofile", "", "Write a CPU profile of lumen's read.")
	latency := fs.Duration("latency", 0, "With the built-in server: delay every request this long, modelling S3's time to first byte.")
	baselineObjects := fs.Int("baseline_objects", 0, "Objects the sequential baseline reads (its rate is per object); 0: all, or 3,000 when --latency is set.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	os.Setenv("AWS_ACCESS_KEY_ID", "bench")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "bench-secret")
	os.Setenv("AWS_REGION", "us-east-1")
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	where := *endpoint
	if where == "" {
		// gofakes3 in a child process, so this process's memory is the
		// reader's alone.
		addr, stop, err := startServer(*latency)
		if err != nil {
			return err
		}
		defer stop()
		where = addr
		fmt.Fprintf(os.Stderr, "S3: gofakes3 in a child process at %s, %v latency per request\n", where, *latency)
	}
	opts := s3fs.Options{Endpoint: where}
	s3fs.Configure(opts)
	client, err := s3fs.NewClient(ctx, opts, nil)
	if err != nil {
		return err
	}
	bucket := fmt.Sprintf("lumen-bench-%d", time.Now().Unix())
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return err
	}

	cfg := gen.Config{Seed: 42, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: *days, WindowDays: 30,
		Events: *events * *days / 30, Apps: 50, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 1000, FilesPerHour: *filesPerHour, Codec: avroio.CodecSnappy}
	local := filepath.Join(os.TempDir(), fmt.Sprintf("lumen-bench-%d-%d-%dd-snappy", cfg.Events, *filesPerHour, *days))
	nfiles, nbytes, err := ensureDataset(local, cfg)
	if err != nil {
		return err
	}
	root := "s3://" + bucket + "/lake"
	t0 := time.Now()
	if err := upload(ctx, client, local, bucket, "lake"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "uploaded %d objects (%.0f MiB) in %.0fs\n", nfiles, float64(nbytes)/(1<<20), time.Since(t0).Seconds())

	window := aggregate.NewDayWindow(cfg.AsOf(), cfg.WindowDays)
	files, err := raw.ListWindow(ctx, root, window.First, window.Last, raw.PlanOptions{})
	if err != nil {
		return err
	}
	type result struct {
		name        string
		files, recs int64
		took        time.Duration
		peakHeap    uint64
		concurrency string
	}
	var results []result
	measure := func(name, conc string, fn func() (int64, int64, error)) error {
		runtime.GC()
		stop := sampleHeap()
		start := time.Now()
		f, r, err := fn()
		took := time.Since(start)
		peak := stop()
		if err != nil {
			return err
		}
		results = append(results, result{name, f, r, took, peak, conc})
		fmt.Fprintf(os.Stderr, "  %-44s %7.1fs %8.0f files/s %6.2f M events/s, peak heap %.0f MiB\n", name, took.Seconds(),
			float64(f)/took.Seconds(), float64(r)/took.Seconds()/1e6, float64(peak)/(1<<20))
		return nil
	}

	// Baseline: one object at a time: GET it, then decode it.
	sample := files
	if n := *baselineObjects; n > 0 && n < len(files) {
		sample = files[:n]
	} else if n == 0 && *latency > 0 && len(files) > 3000 {
		sample = files[:3000]
	}
	err = measure(fmt.Sprintf("baseline: sequential, one object at a time"), "1", func() (int64, int64, error) {
		var recs int64
		for _, f := range sample {
			st, err := raw.ReadUnit(ctx, raw.WorkUnit{Splits: []raw.FileSplit{f}}, raw.ReadOptions{Concurrency: 1}, discard{})
			if err != nil {
				return 0, 0, err
			}
			recs += st.Records
		}
		return int64(len(sample)), recs, nil
	})
	if err != nil {
		return err
	}
	// lumen: packed work units, 16 GETs in flight per unit while earlier
	// objects decode, one unit per core (as a runner's workers would).
	err = measure("lumen reader: packed units, 16 fetches/unit", fmt.Sprintf("%dx16", runtime.GOMAXPROCS(0)), func() (int64, int64, error) {
		defer startProfile(*cpuprofile)()
		return readUnits(ctx, raw.Pack(files, raw.PlanOptions{}), runtime.GOMAXPROCS(0))
	})
	if err != nil {
		return err
	}
	if *bigMB > 0 {
		big, err := uploadBig(ctx, opts, bucket, *bigMB)
		if err != nil {
			return err
		}
		err = measure(fmt.Sprintf("lumen reader: one %d MiB object, ranged splits", big.Size>>20), fmt.Sprintf("%dx1", runtime.GOMAXPROCS(0)), func() (int64, int64, error) {
			units := raw.Pack([]raw.FileSplit{big}, raw.PlanOptions{})
			_, r, err := readUnits(ctx, units, runtime.GOMAXPROCS(0))
			return 1, r, err
		})
		if err != nil {
			return err
		}
	}
	base := results[0]
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\nreader (%s, latency %v)\t objects\t events\t seconds\t objects/s\t M events/s\t vs baseline\t peak heap MiB\t\n", strings.TrimPrefix(where, "http://"), *latency)
	for _, r := range results {
		ratio := "-"
		if r.files > 1 {
			ratio = fmt.Sprintf("%.1fx", (float64(r.files)/r.took.Seconds())/(float64(base.files)/base.took.Seconds()))
		}
		fmt.Fprintf(tw, "%s\t %d\t %d\t %.1f\t %.0f\t %.2f\t %s\t %.0f\t\n", r.name, r.files, r.recs, r.took.Seconds(),
			float64(r.files)/r.took.Seconds(), float64(r.recs)/r.took.Seconds()/1e6, ratio, float64(r.peakHeap)/(1<<20))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("peak RSS of this process (the reader's): %d MiB\n", peakRSS()>>20)
	return nil
}

// startServer runs `bench s3-server` as a child and returns its endpoint.
func startServer(latency time.Duration) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "s3-server", "--latency", latency.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return "", nil, fmt.Errorf("s3 server: %w", err)
	}
	return strings.TrimSpace(line), func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

// serveS3 is `bench s3-server`: gofakes3 with an optional delay per
// request, printing its URL on stdout.
func serveS3(args []string) error {
	fs := flag.NewFlagSet("bench s3-server", flag.ContinueOnError)
	latency := fs.Duration("latency", 0, "Delay every request this long.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	if *latency > 0 {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(*latency)
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	fmt.Println(srv.URL)
	select {}
}

// peakRSS is this process's resident-set high-water mark (Linux).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

type discard struct{}

func (discard) Events([]event.Event)         {}
func (discard) DeadLetter(deadletter.Record) {}

// readUnits reads units with n workers, aggregating as the batch does.
func readUnits(ctx context.Context, units []raw.WorkUnit, n int) (files, recs int64, err error) {
	var next atomic.Int64
	var fileN, recN atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for w := 0; w < n; w++ {
		g.Go(func() error {
			p := aggregate.NewPartials(aggregate.NewDayWindow(time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC), 30), aggregate.Hour, 14)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(units) {
					return nil
				}
				st, err := raw.ReadUnit(ctx, units[i], raw.ReadOptions{}, partialsSink{p})
				if err != nil {
					return err
				}
				fileN.Add(st.Files)
				recN.Add(st.Records)
			}
		})
	}
	err = g.Wait()
	return fileN.Load(), recN.Load(), err
}

// sampleHeap records the peak heap in use until the returned func is called.
func sampleHeap() func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// upload copies the local raw layout into the bucket, 32 objects at a time.
func upload(ctx context.Context, c *s3.Client, local, bucket, prefix string) error {
	var paths []string
	filepath.WalkDir(filepath.Join(local, "raw"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return nil
	})
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, p := range paths {
		g.Go(func() error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(local, p)
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + filepath.ToSlash(rel)),
				Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
			return err
		})
	}
	return g.Wait()
}

// uploadBig writes one large OCF object through s3fs's multipart writer.
func uploadBig(ctx context.Context, opts s3fs.Options, bucket string, mb int) (raw.FileSplit, error) {
	path := fmt.Sprintf("s3://%s/big/raw/app_load/dt=2026-10-30/hr=00/big.avro", bucket)
	w, err := s3fs.New(opts).CreateAtomic(ctx, path)
	if err != nil {
		return raw.FileSplit{}, err
	}
	cw := &countingWriter{w: w}
	ow, err := avroio.NewEventWriter(cw, event.AppLoad, avroio.WithCodec(avroio.CodecSnappy), avroio.WithBlockSize(256<<10))
	if err != nil {
		return raw.FileSplit{}, err
	}
	base := time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC).UnixMilli()
	dev := make([]byte, 16)
	for i := 0; cw.n < int64(mb)<<20; i++ {
		dev[0], dev[1], dev[2] = byte(i), byte(i>>8), byte(i>>16)
		e := event.Event{Kind: event.AppLoad, AppID: fmt.Sprintf("com.big.app%d", i%7), AppVersion: "1.0.0", Platform: "ios",
			DeviceID: dev, EventTime: base + int64(i%86_400_000), ReceivedTime: base + int64(i%86_400_000) + 10}
		if err := ow.AppendEvent(&e); err != nil {
			return raw.FileSplit{}, err
		}
	}
	if err := ow.Close(); err != nil {
		return raw.FileSplit{}, err
	}
	if err := w.Close(); err != nil {
		return raw.FileSplit{}, err
	}
	return raw.FileSplit{Path: path, Kind: event.AppLoad, Size: cw.n, End: cw.n}, nil
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
