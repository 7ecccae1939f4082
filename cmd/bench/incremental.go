package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
)

// benchIncremental measures the nightly batch after one new day of data:
// 31 arrival days are generated; a run as of day D (the 30th) reads them
// and writes rollups; then day D+1's files arrive, and the run as of D+1
// is timed twice, from rollups (incremental) and with --full, for each
// rollup grain; the table gives wall time and what each read. It runs on
// local files, then (with --s3) on an S3 server such as moto, where
// reading is the cost.
func benchIncremental(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench incremental", flag.ContinueOnError)
	events := fs.Int("events", 10_000_000, "Events in 30 days (the 31st adds a day's worth).")
	filesPerHour := fs.Int("files_per_hour", 200, "Files per arrival hour (200 x 24 x 30 = 144,000).")
	s3Endpoint := fs.String("s3", os.Getenv("LUMEN_TEST_S3"), "Also run on this S3 endpoint (default $LUMEN_TEST_S3, e.g. moto); empty: local only.")
	s3Events := fs.Int("s3_events", 1_000_000, "Events in 30 days on S3 (uploading 144,000 objects to moto takes too long).")
	s3FilesPerHour := fs.Int("s3_files_per_hour", 20, "Files per arrival hour on S3.")
	grains := fs.String("grains", "hour,day", "Rollup grains to measure.")
	cpuprofile := fs.String("cpuprofile", "", "Write a CPU profile of the last local incremental run here.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var gs []raw.Grain
	for _, g := range strings.Split(*grains, ",") {
		grain, err := raw.ParseGrain(strings.TrimSpace(g))
		if err != nil {
			return err
		}
		gs = append(gs, grain)
	}
	var rows []incRow
	local, err := incrementalLocal(ctx, *events, *filesPerHour, gs, *cpuprofile)
	if err != nil {
		return err
	}
	rows = append(rows, local...)
	if *s3Endpoint != "" {
		remote, err := incrementalS3(ctx, *s3Endpoint, *s3Events, *s3FilesPerHour, gs)
		if err != nil {
			return err
		}
		rows = append(rows, remote...)
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "where\tgrain\trun as of D+1\tseconds\tvs full\traw files read\traw MiB read\trollups read\trollup MiB read\tpartitions from raw / rollups\trows written\t")
	for _, r := range rows {
		if r.c == nil { // a part of a run, timed alone
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.3fx\t\t\t\t\t\t\t\n", r.where, r.grain, r.run, r.took.Seconds(), r.vsFull)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.3fx\t%d\t%.1f\t%d\t%.1f\t%d / %d\t%d\t\n", r.where, r.grain, r.run, r.took.Seconds(), r.vsFull,
			r.c["read.raw_files"], mib(r.c["read.raw_bytes"]), r.c["read.partitions_from_rollups"], mib(r.c["read.rollup_bytes"]),
			r.c["read.partitions_from_raw"], r.c["read.partitions_from_rollups"], r.c["run.count_rows"]+r.c["run.user_rows"])
	}
	return tw.Flush()
}

type incRow struct {
	where, grain, run string
	took              time.Duration
	vsFull            float64
	c                 map[string]int64
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func incConfig(events, filesPerHour int) gen.Config {
	return gen.Config{Seed: 42, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 31, WindowDays: 30,
		Events: events * 31 / 30, Apps: 50, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 1000, FilesPerHour: filesPerHour,
		Codec: avroio.CodecSnappy}
}

// incrementalLocal links the generated files into a fresh root: days up
// to D first, D+1 later.
func incrementalLocal(ctx context.Context, events, filesPerHour int, grains []raw.Grain, profile string) ([]incRow, error) {
	cfg := incConfig(events, filesPerHour)
	data := filepath.Join(os.TempDir(), fmt.Sprintf("lumen-bench-inc-%d-%d", events, filesPerHour))
	nfiles, nbytes, err := ensureDataset(data, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "local: %s, %d files (%.0f MiB) over 31 days\n", data, nfiles, mib(nbytes))
	var rows []incRow
	for _, g := range grains {
		root, err := os.MkdirTemp("", "lumen-bench-inc-root")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(root)
		last := cfg.AsOf()
		add := func(newDay bool) error {
			return linkRaw(data, root, func(rel string) bool {
				return strings.Contains(rel, "/dt="+last.Format(time.DateOnly)+"/") == newDay
			})
		}
		r, err := incrementalRuns(ctx, "local", root, g, last, add, profile)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// linkRaw hard-links the raw files keep selects from data into root.
func linkRaw(data, root string, keep func(rel string) bool) error {
	return filepath.WalkDir(filepath.Join(data, "raw"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		if !keep(filepath.ToSlash(rel)) {
			return nil
		}
		dst := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Link(p, dst)
	})
}

func incrementalS3(ctx context.Context, endpoint string, events, filesPerHour int, grains []raw.Grain) ([]incRow, error) {
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true"} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	opts := s3fs.Options{Endpoint: endpoint}
	s3fs.Configure(opts)
	client, err := s3fs.NewClient(ctx, opts, nil)
	if err != nil {
		return nil, err
	}
	cfg := incConfig(events, filesPerHour)
	data := filepath.Join(os.TempDir(), fmt.Sprintf("lumen-bench-inc-%d-%d", events, filesPerHour))
	nfiles, nbytes, err := ensureDataset(data, cfg)
	if err != nil {
		return nil, err
	}
	var rows []incRow
	for _, g := range grains {
		bucket := fmt.Sprintf("lumen-bench-inc-%d", time.Now().UnixNano())
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			return nil, err
		}
		// moto slows down as it holds more objects: leave it as found.
		defer removeBucket(ctx, client, bucket)
		last := cfg.AsOf()
		dayDir := "dt=" + last.Format(time.DateOnly)
		// Upload the days up to D, keeping D+1's files aside.
		staged, err := os.MkdirTemp("", "lumen-bench-inc-staged")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(staged)
		if err := linkRaw(data, staged, func(rel string) bool { return !strings.Contains(rel, "/"+dayDir+"/") }); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := upload(ctx, client, staged, bucket, "lake"); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "s3 (%s): uploaded ~%d objects (%.0f MiB) in %.0fs\n", endpoint, nfiles, mib(nbytes), time.Since(t0).Seconds())
		add := func(newDay bool) error { // the days up to D are uploaded above
			if !newDay {
				return nil
			}
			next, err := os.MkdirTemp("", "lumen-bench-inc-next")
			if err != nil {
				return err
			}
			defer os.RemoveAll(next)
			if err := linkRaw(data, next, func(rel string) bool { return strings.Contains(rel, "/"+dayDir+"/") }); err != nil {
				return err
			}
			return upload(ctx, client, next, bucket, "lake")
		}
		r, err := incrementalRuns(ctx, "s3 "+endpoint, "s3://"+bucket+"/lake", g, last, add, "")
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// incrementalRuns runs as of D (writing rollups), adds D+1 (add(true); the
// days up to D are added by add(false) first), then times the
// incremental and the full run as of D+1.
func incrementalRuns(ctx context.Context, where, root string, g raw.Grain, last time.Time, add func(newDay bool) error, profile string) ([]incRow, error) {
	if err := add(false); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lumen-bench-inc-store")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	storeOf := func(run string) string { return "sqlite:" + filepath.Join(dir, run+".db") }
	run := func(name string, asOf time.Time, full bool) (time.Duration, map[string]int64, error) {
		store := storeOf(name)
		cfg := pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: dir, Grain: g, Full: full}
		p, s := beam.NewPipelineWithRoot()
		if err := pipelines.BuildBatch(s, cfg); err != nil {
			return 0, nil, err
		}
		stop := func() {}
		if profile != "" && !full && asOf.Equal(last) {
			stop = startProfile(profile)
		}
		t0 := time.Now()
		_, err := prism.Execute(ctx, p)
		took := time.Since(t0)
		stop()
		if err != nil {
			return 0, nil, err
		}
		st, err := serving.Open(ctx, store)
		if err != nil {
			return 0, nil, err
		}
		defer st.Close()
		total := map[string]int64{}
		for _, k := range event.Kinds {
			runs, err := st.Runs(ctx, k)
			if err != nil {
				return 0, nil, err
			}
			for n, v := range runs[0].Counters {
				if strings.HasPrefix(n, "run.") { // the run's, on every kind's row
					total[n] = v
				} else {
					total[n] += v
				}
			}
		}
		fmt.Fprintf(os.Stderr, "  %s, %v grain: %-34s %6.1fs\n", where, g, name, took.Seconds())
		return took, total, nil
	}
	firstTook, first, err := run("as of D: reads raw, writes rollups", last.AddDate(0, 0, -1), false)
	if err != nil {
		return nil, err
	}
	if err := add(true); err != nil {
		return nil, err
	}
	incTook, inc, err := run("as of D+1: incremental", last, false)
	if err != nil {
		return nil, err
	}
	const fullRun = "as of D+1: --full"
	fullTook, full, err := run(fullRun, last, true)
	if err != nil {
		return nil, err
	}
	// What every run as of D+1 does whatever it reads: list the window,
	// raw files and rollups (issue 9 keeps that to one LIST per kind and
	// day of each).
	w := aggregate.NewDayWindow(last, 30)
	t0 := time.Now()
	opts := raw.PlanOptions{ListConcurrency: 16} // the batch's default
	if _, err := raw.ListWindow(ctx, root, w.First, w.Last, opts); err != nil {
		return nil, err
	}
	if _, err := rollup.List(ctx, root, w.First, w.Last, opts.ListConcurrency); err != nil {
		return nil, err
	}
	listTook := time.Since(t0)
	// And what DESIGN §3 has every run do at the end: overwrite every row
	// of the window, here the --full run's rows, written again into an
	// empty store of the same kind.
	writeTook, err := rewriteRows(ctx, storeOf(fullRun), storeOf("rewrite"), w)
	if err != nil {
		return nil, err
	}
	vs := func(d time.Duration) float64 { return d.Seconds() / fullTook.Seconds() }
	return []incRow{
		{where, g.String(), "(as of D, writing rollups)", firstTook, vs(firstTook), first},
		{where, g.String(), "--full", fullTook, 1, full},
		{where, g.String(), "incremental", incTook, vs(incTook), inc},
		{where, g.String(), "(listing the window only)", listTook, vs(listTook), nil},
		{where, g.String(), "(writing the window's rows only)", writeTook, vs(writeTook), nil},
	}, nil
}

// rewriteRows reads every batch row of window w from one store and times
// writing them all into another, with one writer.
func rewriteRows(ctx context.Context, from, to string, w aggregate.DayWindow) (time.Duration, error) {
	src, err := serving.Open(ctx, from)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var counts []aggregate.CountRow
	var users []aggregate.UserRow
	last := w.Last.Add(24*time.Hour - time.Millisecond)
	for _, k := range event.Kinds {
		cat, err := src.Catalog(ctx, serving.Batch, k, w.First, last)
		if err != nil {
			return 0, err
		}
		for i, av := range cat {
			series := []string{av.Version}
			if i == 0 || cat[i-1].AppID != av.AppID {
				series = append(series, aggregate.AllVersions)
			}
			for _, v := range series {
				for _, g := range []aggregate.Granularity{aggregate.Hour, aggregate.Day} {
					pts, err := src.Counts(ctx, serving.Batch, serving.CountQuery{Kind: k, AppID: av.AppID, Version: v, Gran: g, From: w.First, To: last})
					if err != nil {
						return 0, err
					}
					for _, p := range pts {
						counts = append(counts, aggregate.CountRow{Kind: k, AppID: av.AppID, AppVersion: v, Gran: g, Bucket: p.Bucket.UnixMilli(), Count: p.Count})
					}
				}
				us, err := src.Users(ctx, serving.Batch, serving.UserQuery{Kind: k, AppID: av.AppID, Version: v, From: w.First, To: last})
				if err != nil {
					return 0, err
				}
				users = append(users, us...)
			}
		}
	}
	dst, err := serving.Open(ctx, to)
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	t0 := time.Now()
	wr, err := dst.NewWriter(ctx, serving.Batch)
	if err != nil {
		return 0, err
	}
	for lo := 0; lo < len(counts); lo += 2000 {
		if err := wr.WriteCounts(ctx, counts[lo:min(lo+2000, len(counts))]); err != nil {
			return 0, err
		}
	}
	for lo := 0; lo < len(users); lo += 2000 {
		if err := wr.WriteUsers(ctx, users[lo:min(lo+2000, len(users))]); err != nil {
			return 0, err
		}
	}
	if err := wr.Close(ctx); err != nil {
		return 0, err
	}
	took := time.Since(t0)
	fmt.Fprintf(os.Stderr, "  rewrote %d count and %d user rows in %.2fs\n", len(counts), len(users), took.Seconds())
	return took, nil
}

// removeBucket deletes a bucket and everything in it, best effort.
func removeBucket(ctx context.Context, client *s3.Client, bucket string) {
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: emptying %s: %v\n", bucket, err)
			return
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if len(ids) == 0 {
			continue
		}
		if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			fmt.Fprintf(os.Stderr, "bench: emptying %s: %v\n", bucket, err)
			return
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		fmt.Fprintf(os.Stderr, "bench: removing %s: %v\n", bucket, err)
	}
}
