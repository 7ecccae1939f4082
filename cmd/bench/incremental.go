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
	cassandra := fs.String("cassandra", "", "Also run on local files into this Cassandra (host:port), throttled to --cassandra_rate; empty: skip.")
	cassandraRate := fs.Int("cassandra_rate", 5000, "Cassandra writes per second.")
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
	if *cassandra != "" {
		c, err := incrementalCassandra(ctx, *cassandra, *cassandraRate, *events, *filesPerHour)
		if err != nil {
			return err
		}
		rows = append(rows, c...)
	}
	if *s3Endpoint != "" {
		remote, err := incrementalS3(ctx, *s3Endpoint, *s3Events, *s3FilesPerHour, gs)
		if err != nil {
			return err
		}
		rows = append(rows, remote...)
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "where\tgrain\trun as of D+1\tseconds\tvs full\traw files read\traw MiB read\trollups read\trollup MiB read\tstate MiB read\tpartitions raw / rollups / state\trows written\trows unchanged\trows deleted\tchanged / total\tstate\t")
	for _, r := range rows {
		if r.c == nil { // a part of a run, timed alone
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.3fx\t\t\t\t\t\t\t\t\t\t\t\t\n", r.where, r.grain, r.run, r.took.Seconds(), r.vsFull)
			continue
		}
		written, unchanged := r.c["run.count_rows"]+r.c["run.user_rows"], r.c["rows.unchanged"]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.3fx\t%d\t%.1f\t%d\t%.1f\t%.1f\t%d / %d / %d\t%d\t%d\t%d\t%.3f\t%s\t\n", r.where, r.grain, r.run, r.took.Seconds(), r.vsFull,
			r.c["read.raw_files"], mib(r.c["read.raw_bytes"]), r.c["read.partitions_from_rollups"], mib(r.c["read.rollup_bytes"]), mib(r.c["state.bytes_read"]),
			r.c["read.partitions_from_raw"], r.c["read.partitions_from_rollups"], r.c["read.partitions_from_state"],
			written, unchanged, max(0, r.c["run.rows_deleted"]), float64(written)/float64(max(1, written+unchanged)), stateMode(r.c))
	}
	return tw.Flush()
}

type incRow struct {
	where, grain, run string
	took              time.Duration
	vsFull            float64
	c                 map[string]int64
}

// stateMode is how a run used the window state: full, rebuilt or used.
func stateMode(c map[string]int64) string {
	for _, m := range []string{"used", "rebuilt", "full"} {
		if c["state."+m] == 1 {
			return m
		}
	}
	return "?"
}

// sqliteStores puts a run's SQLite store under dir.
func sqliteStores(dir string) func(name string) string {
	return func(name string) string { return "sqlite:" + filepath.Join(dir, "store-"+name+".db") }
}

// incrementalCassandra is the local benchmark at the day grain into
// Cassandra throttled to rate writes per second, where writing is the
// cost: full against incremental.
func incrementalCassandra(ctx context.Context, addr string, rate, events, filesPerHour int) ([]incRow, error) {
	cfg := incConfig(events, filesPerHour)
	data := filepath.Join(os.TempDir(), fmt.Sprintf("lumen-bench-inc-%d-%d", events, filesPerHour))
	if _, _, err := ensureDataset(data, cfg); err != nil {
		return nil, err
	}
	last := cfg.AsOf()
	root, add, err := linkedRoot(data, last)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	ks := fmt.Sprintf("lumen_bench_inc_%d", time.Now().Unix())
	storeOf := func(name string) string {
		return fmt.Sprintf("cassandra://%s/%s_%s?rate=%d&consistency=ONE", addr, ks, name, rate)
	}
	return incrementalRuns(ctx, fmt.Sprintf("cassandra rate=%d", rate), root, raw.GrainDay, last, add, "", storeOf, false)
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
		last := cfg.AsOf()
		root, add, err := linkedRoot(data, last)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(root)
		r, err := incrementalRuns(ctx, "local", root, g, last, add, profile, sqliteStores(root), true)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// linkedRoot is a fresh root for the generated files under data:
// add(false) links the days up to D, add(true) day D+1 (last).
func linkedRoot(data string, last time.Time) (string, func(newDay bool) error, error) {
	root, err := os.MkdirTemp("", "lumen-bench-inc-root")
	if err != nil {
		return "", nil, err
	}
	add := func(newDay bool) error {
		return linkRaw(data, root, func(rel string) bool {
			return strings.Contains(rel, "/dt="+last.Format(time.DateOnly)+"/") == newDay
		})
	}
	return root, add, nil
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
		r, err := incrementalRuns(ctx, "s3 "+endpoint, "s3://"+bucket+"/lake", g, last, add, "", sqliteStores(staged), true)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// incrementalRuns runs as of D (writing rollups and the window state),
// adds D+1 (add(true); the days up to D are added by add(false) first),
// then times the incremental run as of D+1 into the same store (from the
// state) and a --full run as of D+1 into an empty one. storeOf gives the
// store of a run: "inc" or "full".
//
// With verifyNew, a third store gets the run as of D too, and the run as
// of D+1 with --verify=new is timed into it.
func incrementalRuns(ctx context.Context, where, root string, g raw.Grain, last time.Time, add func(newDay bool) error, profile string,
	storeOf func(name string) string, verifyNew bool) ([]incRow, error) {
	if err := add(false); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lumen-bench-inc-dl")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// The --verify=new runs keep their rollups apart, so that the run as
	// of D+1 reads D+1 from raw as the incremental run does.
	newRollups := strings.TrimSuffix(root, "/") + "-verify-new"
	run := func(name, store string, asOf time.Time, full bool, verify ...string) (time.Duration, map[string]int64, error) {
		cfg := pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: dir, Grain: g, Full: full}
		if len(verify) > 0 {
			cfg.Verify, cfg.RollupRoot = verify[0], newRollups
		}
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
				if strings.HasPrefix(n, "run.") || strings.HasPrefix(n, "state.") { // the run's, on every kind's row
					total[n] = v
				} else {
					total[n] += v
				}
			}
		}
		fmt.Fprintf(os.Stderr, "  %s, %v grain: %-34s %6.1fs\n", where, g, name, took.Seconds())
		return took, total, nil
	}
	inc, full := storeOf("inc"), storeOf("full")
	firstTook, first, err := run("as of D: reads raw, writes rollups", inc, last.AddDate(0, 0, -1), false)
	if err != nil {
		return nil, err
	}
	if verifyNew {
		if !strings.Contains(root, "://") {
			defer os.RemoveAll(newRollups)
		}
		if _, _, err := run("as of D, for --verify=new", storeOf("new"), last.AddDate(0, 0, -1), false, pipelines.VerifyNew); err != nil {
			return nil, err
		}
	}
	if err := add(true); err != nil {
		return nil, err
	}
	incTook, incC, err := run("as of D+1: incremental", inc, last, false)
	if err != nil {
		return nil, err
	}
	if incC["state.used"] != 1 {
		return nil, fmt.Errorf("the incremental run did not use the window state of the run as of D: %v", incC)
	}
	fullTook, fullC, err := run("as of D+1: --full", full, last, true)
	if err != nil {
		return nil, err
	}
	// What every run as of D+1 does whatever it reads: list the window,
	// raw files and rollups (one LIST per kind and day of each,
	// concurrently).
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
	vs := func(d time.Duration) float64 { return d.Seconds() / fullTook.Seconds() }
	rows := []incRow{
		{where, g.String(), "(as of D, writing rollups)", firstTook, vs(firstTook), first},
		{where, g.String(), "--full", fullTook, 1, fullC},
		{where, g.String(), "incremental", incTook, vs(incTook), incC},
	}
	if verifyNew {
		newTook, newC, err := run("as of D+1: incremental --verify=new", storeOf("new"), last, false, pipelines.VerifyNew)
		if err != nil {
			return nil, err
		}
		if newC["state.verified_new"] != 1 {
			return nil, fmt.Errorf("the --verify=new run listed the window: %v", newC)
		}
		rows = append(rows, incRow{where, g.String(), "incremental --verify=new", newTook, vs(newTook), newC})
	}
	return append(rows, incRow{where, g.String(), "(listing the window only)", listTook, vs(listTook), nil}), nil
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
