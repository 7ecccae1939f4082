package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
	"github.com/lumenhq/lumen/serving/cassandrastore"
	_ "github.com/lumenhq/lumen/serving/sqlitestore" // sqlite: stores
)

// benchServe loads the query server on loopback, backed by Cassandra: a
// month of generated traffic goes through the batch (up to yesterday) and,
// for today, into speed rows; then a mix of endpoints is requested at a
// fixed rate (open loop: latency counts from when a request was due, so a
// slow server cannot slow the load down), first at --rate for --duration,
// then at each of --ramp for --step until p99 reaches --p99 or a request
// fails, then at twice the best rate, where only 429 and 503 may answer
// what the server cannot take. The server is query serve's stack: the
// guard, the limits, tenant keys (one per app, each request with its
// app's key) and the read cache, with query serve's defaults.
func benchServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	addr := fs.String("cassandra", os.Getenv("LUMEN_TEST_CASSANDRA"), "Cassandra host:port (default $LUMEN_TEST_CASSANDRA)")
	events := fs.Int("events", 600_000, "Events to generate over 31 days.")
	apps := fs.Int("apps", 20, "Apps.")
	rate := fs.Float64("rate", 1000, "The main run's requests/s.")
	duration := fs.Duration("duration", 30*time.Second, "The main run's length.")
	ramp := fs.String("ramp", "1500,2000,3000,4000,5000,6000,8000,10000", "Rates (requests/s) to try after the main run, ascending.")
	keys := fs.Bool("keys", true, "Serve with tenant keys (one per app), as query serve --keys.")
	cache := fs.Bool("cache", true, "Serve with query serve's read cache (--batch_poll 1s, --speed_cache 2s, --cache_bytes 256 MiB).")
	step := fs.Duration("step", 10*time.Second, "Each ramp step's length.")
	p99 := fs.Duration("p99", 100*time.Millisecond, "The p99 latency a rate must stay under.")
	timeout := fs.Duration("timeout", 2*time.Second, "The server's store-call timeout.")
	cpuprofile := fs.String("cpuprofile", "", "Write a CPU profile of the main run (server and load generator) here.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return fmt.Errorf("--cassandra or LUMEN_TEST_CASSANDRA is required (testing/services/up cassandra)")
	}
	var rates []float64
	for _, r := range strings.Split(*ramp, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		x, err := strconv.ParseFloat(r, 64)
		if err != nil || x <= 0 {
			return fmt.Errorf("--ramp: %q is not a rate", r)
		}
		rates = append(rates, x)
	}

	ks := fmt.Sprintf("lumen_bench_serve_%d", time.Now().UnixNano()%1e9)
	storeURL := fmt.Sprintf("cassandra://%s/%s?consistency=ONE", *addr, ks)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	fmt.Fprintf(os.Stderr, "bench serve: seeding %s with %d events over %s..%s\n", ks, *events, today.AddDate(0, 0, -30).Format(time.DateOnly), today.Format(time.DateOnly))
	appIDs, err := seedServe(ctx, storeURL, today, *events, *apps)
	if err != nil {
		return err
	}
	st, err := cassandrastore.Open(ctx, storeURL)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.(*cassandrastore.Store).Client().Session().Query("DROP KEYSPACE " + ks).Exec(); err != nil {
			fmt.Fprintln(os.Stderr, "bench serve: dropping", ks, err)
		}
		st.Close()
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil)) // the one line per request, formatted and dropped
	opts := serving.CacheOptions{RunsTTL: time.Second}
	if *cache {
		opts = serving.CacheOptions{RunsTTL: time.Second, SpeedTTL: 2 * time.Second, MaxBytes: 256 << 20}
	}
	svc := api.NewService(&serving.Querier{Store: serving.NewReadCache(serving.WithTimeout(st, *timeout), opts)})
	var auth *api.Auth
	secrets := map[string]string{} // by app
	if *keys {
		var entries []api.KeyEntry
		for i, app := range appIDs {
			secret, e, err := api.NewSecret(fmt.Sprintf("tenant-%d", i), []string{app})
			if err != nil {
				return err
			}
			// The server's capacity is measured, not a tenant's limits.
			e.Rate, e.Burst, e.MaxInFlight = 1e6, 1e6, 4096
			entries = append(entries, e)
			secrets[app] = secret
		}
		ks, err := api.ParseKeys(strings.NewReader(mustJSON(api.KeysFile{Keys: entries})))
		if err != nil {
			return err
		}
		auth = api.NewAuth(ks, api.DefaultKeyLimits)
	}
	h := api.Stack(api.NewHandler(svc, log, nil), api.Guard{}, api.Limits{MaxInFlight: 256, RequestTimeout: 10 * time.Second}, auth) // query serve's defaults
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- api.Serve(sctx, ln, h, log, 10*time.Second) }()
	defer func() { stop(); <-served }()
	base := "http://" + ln.Addr().String()

	mix := requestMix(appIDs, today)
	mix.secrets = secrets
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}, Timeout: 10 * time.Second}
	// Warm the catalog and the connections.
	runLoad(ctx, client, base, mix, 50, 2*time.Second)

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(os.Stdout, "\nbench serve: cassandra at %s, %d apps, %d events, keys %v, cache %v; mix %s\n", *addr, len(appIDs), *events, *keys, *cache, mix.describe())
	fmt.Fprintf(tw, "run\t rate/s\t seconds\t requests\t achieved/s\t p50 ms\t p99 ms\t max ms\t errors\t\n")
	row := func(name string, r loadResult) {
		fmt.Fprintf(tw, "%s\t %.0f\t %.0f\t %d\t %.0f\t %.1f\t %.1f\t %.1f\t %d\t\n", name, r.rate, r.took.Seconds(), r.n, float64(r.n)/r.took.Seconds(),
			ms(r.quantile(0.5)), ms(r.quantile(0.99)), ms(r.quantile(1)), r.errors)
	}
	stopProfile := startProfile(*cpuprofile)
	main := runLoad(ctx, client, base, mix, *rate, *duration)
	stopProfile()
	row("main", main)
	best := 0.0
	if main.errors == 0 && main.quantile(0.99) < *p99 {
		best = *rate
	}
	for _, r := range rates {
		if r <= best {
			continue
		}
		res := runLoad(ctx, client, base, mix, r, *step)
		row("ramp", res)
		if res.errors > 0 || res.quantile(0.99) >= *p99 {
			break
		}
		best = r
	}
	var over loadResult
	if best > 0 {
		over = runLoad(ctx, client, base, mix, 2*best, *step)
		row("2× best", over)
	}
	tw.Flush()
	fmt.Printf("\nthe main run by request:\n")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "request\t share\t requests\t p50 ms\t p99 ms\t\n")
	for i, k := range mix.kinds {
		l := main.byKind[i]
		if len(l) == 0 {
			continue
		}
		q := func(f float64) float64 { return ms(l[int(f*float64(len(l)-1))]) }
		fmt.Fprintf(tw, "%s\t %d%%\t %d\t %.1f\t %.1f\t\n", k, 100*mix.weights[i]/mix.total(), len(l), q(0.5), q(0.99))
	}
	tw.Flush()
	if len(main.errorKinds) > 0 {
		fmt.Printf("errors of the main run: %v\n", main.errorKinds)
	}
	fmt.Printf("highest rate tried with p99 < %v and no errors: %.0f requests/s\n", *p99, best)
	if best > 0 {
		fmt.Printf("at 2× that (%.0f/s): answers by status %v; %d refused by the load generator (over %d outstanding); RSS of the bench process (server and load generator) %s\n",
			2*best, over.statuses, over.errorKinds["client backlog"], maxInFlight, rss())
	}
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// rss is this process's resident set size and its peak, from /proc.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	var now, peak string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			now = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			peak = strings.TrimSpace(v)
		}
	}
	return now + " (peak " + peak + ")"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// seedServe writes a month of generated traffic into the store: the batch
// on prism over the raw files of arrival days up to yesterday, and today's
// events as speed rows (minutes, hours, day, sketches), aggregated by the
// model both layers use.
func seedServe(ctx context.Context, storeURL string, today time.Time, events, apps int) ([]string, error) {
	root, err := os.MkdirTemp("", "lumen-bench-serve-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	cfg := gen.Config{Seed: 5, Start: today.AddDate(0, 0, -30), Days: 31, Events: events, Apps: apps, OfflineShare: 0.05, FilesPerHour: 4}
	files := gen.NewFileSink(root, cfg)
	speed := map[aggregate.AppKey]aggregate.Agg{}
	appSet := map[string]bool{}
	err = gen.Generate(cfg, serveSeedSink{cut: today.UnixMilli(), files: files, speed: speed, apps: appSet})
	if err == nil {
		err = files.Close()
	}
	if err != nil {
		return nil, err
	}
	p, s := beam.NewPipelineWithRoot()
	if err := pipelines.BuildBatch(s, pipelines.BatchConfig{Input: root, AsOf: today.AddDate(0, 0, -1), Store: storeURL, DeadLetterRoot: root + "/dl"}); err != nil {
		return nil, err
	}
	if _, err := prism.Execute(ctx, p); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	st, err := serving.Open(ctx, storeURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	w, err := st.NewWriter(ctx, serving.Speed, serving.WithRun("bench"))
	if err != nil {
		return nil, err
	}
	for key, a := range speed {
		counts, err := a.CountRows(key, aggregate.Minute, aggregate.Hour, aggregate.Day)
		if err != nil {
			return nil, err
		}
		users, err := a.UserRows(key)
		if err != nil {
			return nil, err
		}
		if err := w.WriteCounts(ctx, counts); err != nil {
			return nil, err
		}
		if err := w.WriteUsers(ctx, users); err != nil {
			return nil, err
		}
	}
	if err := w.Close(ctx); err != nil {
		return nil, err
	}
	var out []string
	for a := range appSet {
		out = append(out, a)
	}
	slices.Sort(out)
	return out, nil
}

// serveSeedSink sends records arriving before cut to the raw files and
// aggregates today's valid ones as the speed layer would.
type serveSeedSink struct {
	cut   int64
	files *gen.FileSink
	speed map[aggregate.AppKey]aggregate.Agg
	apps  map[string]bool
}

func (s serveSeedSink) Record(r *gen.Record) error {
	if r.Invalid == "" {
		s.apps[r.Event.AppID] = true
	}
	if r.Arrival < s.cut {
		return s.files.Record(r)
	}
	if r.Invalid != "" {
		return nil
	}
	e := &r.Event
	ms, _ := e.BucketTime()
	if ms < s.cut {
		return nil // late for the speed layer's today
	}
	key := aggregate.AppKey{Kind: e.Kind, AppID: e.AppID}
	a, ok := s.speed[key]
	if !ok {
		a = aggregate.NewAgg(aggregate.Minute, 14)
		s.speed[key] = a
	}
	a.Add(e, ms)
	return nil
}

func (s serveSeedSink) DayDone(d time.Time) error { return s.files.DayDone(d) }

// mix is the requests a dashboard and API clients make, with weights.
type mix struct {
	kinds   []string
	weights []int
	make    []func(rng *rand.Rand) string
	secrets map[string]string // the key of each app; none without keys
}

// secretOf returns the key of the app a request path names.
func (m mix) secretOf(path string) string {
	if len(m.secrets) == 0 {
		return ""
	}
	if _, q, ok := strings.Cut(path, "?"); ok {
		if v, err := url.ParseQuery(q); err == nil && v.Has("app") {
			return m.secrets[v.Get("app")]
		}
	}
	for _, s := range m.secrets { // /v1/apps: any tenant
		return s
	}
	return ""
}

func (m mix) total() int {
	total := 0
	for _, w := range m.weights {
		total += w
	}
	return total
}

func (m mix) describe() string {
	total := m.total()
	var parts []string
	for i, k := range m.kinds {
		parts = append(parts, fmt.Sprintf("%s %d%%", k, 100*m.weights[i]/total))
	}
	return strings.Join(parts, ", ")
}

// pick returns the index of a request kind and a request of it.
func (m mix) pick(rng *rand.Rand) (int, string) {
	total := 0
	for _, w := range m.weights {
		total += w
	}
	n := rng.IntN(total)
	for i, w := range m.weights {
		if n < w {
			return i, m.make[i](rng)
		}
		n -= w
	}
	return 0, m.make[0](rng)
}

func requestMix(apps []string, today time.Time) mix {
	day := func(n int) string { return today.AddDate(0, 0, n).Format(time.DateOnly) }
	kinds := []string{"app_load", "crash", "handled_exception"}
	pick := func(rng *rand.Rand, xs []string) string { return xs[rng.IntN(len(xs))] }
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "?" + v.Encode()
	}
	var m mix
	add := func(name string, w int, f func(rng *rand.Rand) string) {
		m.kinds, m.weights, m.make = append(m.kinds, name), append(m.weights, w), append(m.make, f)
	}
	add("counts/day 30d", 25, func(rng *rand.Rand) string {
		return "/v1/counts" + q("kind", pick(rng, kinds), "app", pick(rng, apps), "granularity", "day", "from", day(-29), "to", day(0))
	})
	add("counts/minute 1h", 25, func(rng *rand.Rand) string {
		now := time.Now().UTC()
		return "/v1/counts" + q("kind", pick(rng, kinds), "app", pick(rng, apps), "granularity", "minute",
			"from", now.Add(-time.Hour).Format(time.RFC3339), "to", now.Format(time.RFC3339))
	})
	add("counts/hour 7d", 10, func(rng *rand.Rand) string {
		return "/v1/counts" + q("app", pick(rng, apps), "granularity", "hour", "from", day(-6), "to", day(0))
	})
	add("users 30d", 10, func(rng *rand.Rand) string {
		return "/v1/users" + q("app", pick(rng, apps), "from", day(-29), "to", day(0))
	})
	add("active", 15, func(rng *rand.Rand) string { return "/v1/active" + q("app", pick(rng, apps)) })
	add("crash-free 30d", 5, func(rng *rand.Rand) string {
		return "/v1/crash-free" + q("app", pick(rng, apps), "from", day(-29), "to", day(0))
	})
	add("late 7d", 5, func(rng *rand.Rand) string {
		return "/v1/late" + q("app", pick(rng, apps), "granularity", "day", "from", day(-6), "to", day(0))
	})
	add("apps", 5, func(*rand.Rand) string { return "/v1/apps" })
	return m
}

type loadResult struct {
	rate       float64
	took       time.Duration
	n          int
	errors     int
	errorKinds map[string]int
	statuses   map[int]int
	lat        []time.Duration // sorted
	byKind     map[int][]time.Duration
}

func (r loadResult) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q * float64(len(r.lat)-1))
	return r.lat[i]
}

// maxInFlight bounds the requests outstanding at once: a request due when
// this many are waiting counts as an error instead of piling up.
const maxInFlight = 2048

// runLoad sends requests from m at rate per second for d, each due at its
// slot of the schedule, and measures each from when it was due.
func runLoad(ctx context.Context, client *http.Client, base string, m mix, rate float64, d time.Duration) loadResult {
	res := loadResult{rate: rate, errorKinds: map[string]int{}, statuses: map[int]int{}, byKind: map[int][]time.Duration{}}
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	rng := rand.New(rand.NewPCG(uint64(rate), 1))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	fail := func(why string) {
		mu.Lock()
		res.errors++
		res.errorKinds[why]++
		mu.Unlock()
	}
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		kind, path := m.pick(rng)
		select {
		case sem <- struct{}{}:
		default:
			fail("client backlog")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, err := http.NewRequest(http.MethodGet, base+path, nil)
			if err != nil {
				fail("request")
				return
			}
			if s := m.secretOf(path); s != "" {
				req.Header.Set("Authorization", "Bearer "+s)
			}
			resp, err := client.Do(req)
			if err != nil {
				fail("transport")
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat := time.Since(due)
			mu.Lock()
			res.statuses[resp.StatusCode]++
			res.lat = append(res.lat, lat)
			res.byKind[kind] = append(res.byKind[kind], lat)
			mu.Unlock()
			if resp.StatusCode != http.StatusOK {
				fail(strconv.Itoa(resp.StatusCode) + " " + strings.SplitN(path, "?", 2)[0])
			}
		}()
	}
	wg.Wait()
	res.took = time.Since(start)
	res.n = n
	slices.Sort(res.lat)
	for _, l := range res.byKind {
		slices.Sort(l)
	}
	return res
}
