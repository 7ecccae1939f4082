// Command query answers questions from lumen's store, merging the batch and
// speed layers, from the command line or as an HTTP server with a
// dashboard. Its JSON output is a contract other tools script against.
//
//	query counts     --store S --kind KIND --app A [--version V] --granularity day|hour|minute --from FROM --to TO [--format json|table]
//	query users      --store S --kind KIND --app A [--version V] --from D1 --to D2 [--format json|table]
//	query active     --store S --kind KIND --app A [--version V] [--date D]
//	query crash-free --store S --app A [--version V] --from D1 --to D2
//	query late       --store S --kind KIND --app A [--version V] --granularity day|hour|minute --from FROM --to TO
//	query runs       --store S [--kind K]
//	query serve      --store S [--addr 127.0.0.1:8080] [--keys FILE] [--timeout 2s]
//	query keygen     --id ID --apps APP,PREFIX*,…
//
// FROM and TO are inclusive: days (YYYY-MM-DD) or RFC3339 times. With no
// --version, results are for all versions. Each subcommand's flags are the
// parameters of the HTTP endpoint of the same name (/v1/counts, …), parsed
// and answered by the same functions (package serving/api).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lumenhq/lumen/cmd/internal/buildinfo"
	"github.com/lumenhq/lumen/cmd/internal/cassandraflags"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
	_ "github.com/lumenhq/lumen/serving/cassandrastore" // cassandra:// stores
	_ "github.com/lumenhq/lumen/serving/sqlitestore"    // sqlite: stores
)

const usage = `usage:
  query counts     [--store S] [--kind KIND] --app APP [--version V] [--granularity G] --from FROM --to TO [--format F]
  query users      [--store S] [--kind KIND] --app APP [--version V] --from DAY --to DAY [--format F]
  query active     [--store S] [--kind KIND] --app APP [--version V] [--date DAY]
  query crash-free [--store S] --app APP [--version V] --from DAY --to DAY
  query late       [--store S] [--kind KIND] --app APP [--version V] [--granularity G] --from FROM --to TO
  query runs       [--store S] [--kind KIND|all]
  query serve      [--store S] [--addr ADDR] [--keys FILE | --insecure_no_auth] [--allow_host H,…] [--allow_origin O,…]
                   [--max_in_flight N] [--request_timeout D] [--key_rate R] [--key_burst N] [--key_max_in_flight N]
                   [--batch_poll D] [--speed_cache D] [--cache_bytes N] [--timeout D] [--grace D]
  query keygen     --id ID --apps APP,PREFIX*,…
  query --version
Defaults: --store sqlite:lumen.db, --kind app_load (runs: all), --granularity day,
  --date today (UTC), --format json, --addr 127.0.0.1:8080, --max_in_flight 256,
  --request_timeout 10s, --key_rate 200, --key_burst 400, --key_max_in_flight 32, --batch_poll 1s,
  --speed_cache 2s, --cache_bytes 268435456, --timeout 2s, --grace 10s.
FROM/TO are inclusive days (YYYY-MM-DD) or RFC3339 times; KIND is app_load, crash or
handled_exception; G is day, hour or minute; F is json or table. Every command also takes
--cassandra_username and --cassandra_password_file; "query COMMAND -h" lists its flags.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1], os.Args[2:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

// flagOutput is where a command's flag set writes its help and errors.
var flagOutput io.Writer = os.Stderr

// logOutput is where query serve logs.
var logOutput io.Writer = os.Stderr

// storeFlags are the flags every subcommand has.
type storeFlags struct {
	store string
	cas   *cassandraflags.Flags
}

func (c *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.store, "store", "sqlite:lumen.db", "Store URL: sqlite:PATH or cassandra://…")
	c.cas = cassandraflags.Register(fs)
}

func (c storeFlags) open(ctx context.Context) (serving.Store, error) {
	store, err := c.cas.Store(c.store)
	if err != nil {
		return nil, err
	}
	st, err := serving.Open(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	return st, nil
}

// apiFlags declares the flags that are an endpoint's parameters; values
// turns the ones given into the url.Values the endpoint's parser reads, so
// the CLI and the server validate alike (defaults are the parser's).
type apiFlags struct {
	fs    *flag.FlagSet
	names []string
}

func (a *apiFlags) add(name, help string) {
	a.fs.String(name, "", help)
	a.names = append(a.names, name)
}

func (a *apiFlags) values() url.Values {
	v := url.Values{}
	a.fs.Visit(func(f *flag.Flag) {
		for _, n := range a.names {
			if f.Name == n {
				v.Set(n, f.Value.String())
			}
		}
	})
	return v
}

var flagHelp = map[string]string{
	"kind":        "Event kind: app_load (default), crash or handled_exception.",
	"app":         "App id (required).",
	"version":     "App version; empty means all versions.",
	"granularity": "Bucket size: minute, hour or day (default day).",
	"from":        "First day or time, inclusive (required).",
	"to":          "Last day or time, inclusive (required).",
	"date":        "The day of DAU/WAU/MAU (default today, UTC).",
}

func run(ctx context.Context, cmd string, args []string, out io.Writer) error {
	var sf storeFlags
	fs := flag.NewFlagSet("query "+cmd, flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	if cmd == "keygen" { // needs no store
		id := fs.String("id", "", "The key's id (required): who it is for, as logged.")
		apps := fs.String("apps", "", "The apps the key may read (required, comma-separated): app ids, or prefixes ending in * (* alone: every app).")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return keygen(out, *id, splitList(*apps))
	}
	sf.register(fs)
	af := &apiFlags{fs: fs}
	params := map[string][]string{
		"counts":     {"kind", "app", "version", "granularity", "from", "to"},
		"late":       {"kind", "app", "version", "granularity", "from", "to"},
		"users":      {"kind", "app", "version", "from", "to"},
		"active":     {"kind", "app", "version", "date"},
		"crash-free": {"app", "version", "from", "to"},
	}
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprintln(out, usage)
		return nil
	case "--version", "-version", "version": // (a subcommand's --version is an app version)
		fmt.Fprintln(out, buildinfo.String("query"))
		return nil
	case "runs":
		kind := fs.String("kind", "all", "Event kind, or all.")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return runs(ctx, sf, *kind, out)
	case "serve":
		var cfg serveConfig
		fs.StringVar(&cfg.addr, "addr", api.DefaultAddr, "Address to listen on. The default is loopback only; give 0.0.0.0:PORT to serve the network.")
		fs.DurationVar(&cfg.timeout, "timeout", 2*time.Second, "Time limit of each store call; a request whose call runs out gets 503.")
		fs.DurationVar(&cfg.grace, "grace", 10*time.Second, "On SIGTERM, how long requests in flight may take to finish.")
		fs.IntVar(&cfg.limits.MaxInFlight, "max_in_flight", 256, "Requests answered at once; one more gets 503 with Retry-After at once, never a queue.")
		fs.DurationVar(&cfg.limits.RequestTimeout, "request_timeout", 10*time.Second, "Each request's deadline, which reaches every store call; past it the answer is 503.")
		fs.StringVar(&cfg.keys, "keys", "", "API keys file (JSON; query keygen makes entries): each request needs a key's bearer secret and reads only the key's apps. Reloaded on SIGHUP.")
		fs.BoolVar(&cfg.noAuth, "insecure_no_auth", false, "Serve without --keys on a non-loopback --addr: anyone who reaches the port reads every app.")
		cfg.keyLimits = api.DefaultKeyLimits
		fs.Float64Var(&cfg.keyLimits.Rate, "key_rate", cfg.keyLimits.Rate, "Requests per second of each key (a token bucket; past it 429), unless the keys file sets its rate.")
		fs.IntVar(&cfg.keyLimits.Burst, "key_burst", cfg.keyLimits.Burst, "Requests each key may make at once above its rate, unless the keys file sets its burst.")
		fs.IntVar(&cfg.keyLimits.MaxInFlight, "key_max_in_flight", cfg.keyLimits.MaxInFlight, "Requests of each key answered at once (past it 429), unless the keys file sets its max_in_flight.")
		fs.DurationVar(&cfg.cache.RunsTTL, "batch_poll", time.Second, "How often batch_runs is read again: a finished batch run shows in the answers within it (0: read for every request).")
		fs.DurationVar(&cfg.cache.SpeedTTL, "speed_cache", 2*time.Second, "How long a speed-layer read is reused (0: never); at most the stream's --every. Answers say how old in the Lumen-Speed-Age header.")
		fs.Int64Var(&cfg.cache.MaxBytes, "cache_bytes", 256<<20, "Memory for cached store reads, in bytes (0: no read is cached). Batch reads are kept until the next batch run.")
		allowHost := fs.String("allow_host", "", "Host names served besides loopback ones (comma-separated): the names clients use to reach a non-loopback --addr. Other Host headers get 421 (DNS rebinding).")
		allowOrigin := fs.String("allow_origin", "", "Origins (scheme://host[:port], comma-separated) whose pages may read the API cross-origin; others get 403.")
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg.guard = api.Guard{Hosts: splitList(strings.ToLower(*allowHost)), Origins: splitList(*allowOrigin)}
		if cfg.limits.MaxInFlight <= 0 || cfg.limits.RequestTimeout <= 0 {
			return fmt.Errorf("--max_in_flight %d and --request_timeout %v: want both > 0", cfg.limits.MaxInFlight, cfg.limits.RequestTimeout)
		}
		if cfg.timeout <= 0 {
			return fmt.Errorf("--timeout: %v, want > 0", cfg.timeout)
		}
		if l := cfg.keyLimits; l.Rate <= 0 || l.Burst <= 0 || l.MaxInFlight <= 0 {
			return fmt.Errorf("--key_rate %g, --key_burst %d and --key_max_in_flight %d: want all > 0", l.Rate, l.Burst, l.MaxInFlight)
		}
		if cfg.cache.RunsTTL < 0 || cfg.cache.SpeedTTL < 0 || cfg.cache.MaxBytes < 0 {
			return fmt.Errorf("--batch_poll %v, --speed_cache %v and --cache_bytes %d: want none negative", cfg.cache.RunsTTL, cfg.cache.SpeedTTL, cfg.cache.MaxBytes)
		}
		if cfg.keys != "" && cfg.noAuth {
			return fmt.Errorf("--keys and --insecure_no_auth: give one")
		}
		return serve(ctx, sf, cfg)
	}
	names, ok := params[cmd]
	if !ok {
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	for _, n := range names {
		af.add(n, flagHelp[n])
	}
	format := "json"
	if cmd == "counts" || cmd == "users" {
		fs.StringVar(&format, "format", "json", "Output: json (for scripts) or table (for people).")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if format != "json" && format != "table" {
		return fmt.Errorf("--format: %q, want json or table", format)
	}
	v := af.values()
	// Validate before opening the store: a bad flag fails fast.
	var answer func(*api.Service) (any, error)
	switch cmd {
	case "counts":
		r, err := api.ParseCounts(v)
		if err != nil {
			return flagError(err)
		}
		answer = func(s *api.Service) (any, error) { return s.Counts(ctx, r) }
	case "late":
		r, err := api.ParseCounts(v)
		if err != nil {
			return flagError(err)
		}
		answer = func(s *api.Service) (any, error) { return s.Late(ctx, r) }
	case "users":
		r, err := api.ParseUsers(v)
		if err != nil {
			return flagError(err)
		}
		answer = func(s *api.Service) (any, error) { return s.Users(ctx, r) }
	case "active":
		r, err := api.ParseActive(v, time.Now())
		if err != nil {
			return flagError(err)
		}
		answer = func(s *api.Service) (any, error) { return s.Active(ctx, r) }
	case "crash-free":
		r, err := api.ParseCrashFree(v)
		if err != nil {
			return flagError(err)
		}
		answer = func(s *api.Service) (any, error) { return s.CrashFree(ctx, r) }
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	resp, err := answer(api.NewService(&serving.Querier{Store: st}))
	if err != nil {
		return err
	}
	switch r := resp.(type) {
	case api.CountsResponse:
		if format == "table" {
			return countsTable(out, r)
		}
		// The CLI's contract is the bare array of points.
		return writeJSON(out, r.Points)
	case api.UsersResponse:
		if format == "table" {
			_, err := fmt.Fprintf(out, "%s distinct devices of %s %s, %s..%s: %d (%d batch days, %d speed days)\n",
				r.Kind, r.App, versionLabel(r.Version), r.From, r.To, r.Estimate, r.BatchDays, r.SpeedDays)
			return err
		}
	}
	return writeJSON(out, resp)
}

// flagError renders a parameter error in flag terms ("--from: …").
func flagError(err error) error {
	var bad *api.BadRequestError
	if !errors.As(err, &bad) {
		return err
	}
	var errs []error
	for _, p := range bad.Problems {
		errs = append(errs, fmt.Errorf("--%s: %s", p.Param, p.Message))
	}
	return errors.Join(errs...)
}

func countsTable(out io.Writer, r api.CountsResponse) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "bucket (UTC)\t %s\t layer\t\n", r.Kind)
	for _, p := range r.Points {
		fmt.Fprintf(tw, "%s\t %d\t %s\t\n", p.Bucket.Format(time.RFC3339), p.Count, p.Layer)
	}
	return tw.Flush()
}

func versionLabel(v string) string {
	if v == "" {
		return "(all versions)"
	}
	return v
}

type serveConfig struct {
	addr           string
	timeout, grace time.Duration
	guard          api.Guard
	limits         api.Limits
	keys           string // the keys file; "" serves without keys
	noAuth         bool
	keyLimits      api.KeyLimits
	cache          serving.CacheOptions
}

// keygen prints a new secret and the keys-file entry of its hash.
func keygen(out io.Writer, id string, apps []string) error {
	if id == "" || len(apps) == 0 {
		return fmt.Errorf("keygen needs --id and --apps")
	}
	secret, entry, err := api.NewSecret(id, apps)
	if err != nil {
		return err
	}
	b, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "secret (give it to the key's holder; it is shown once and not stored): %s\nkeys file entry (add it to the \"keys\" list): %s\n", secret, b)
	return err
}

// serve runs the HTTP API and dashboard until ctx is cancelled (SIGINT or
// SIGTERM), then shuts down gracefully.
func serve(ctx context.Context, sf storeFlags, cfg serveConfig) error {
	log := slog.New(slog.NewTextHandler(logOutput, nil))
	host, _, _ := net.SplitHostPort(cfg.addr)
	if cfg.keys == "" && !cfg.noAuth && !isLoopback(host) {
		return fmt.Errorf("--addr %s serves the network without API keys: give --keys FILE (query keygen makes entries), or --insecure_no_auth to let anyone who reaches the port read every app", cfg.addr)
	}
	var auth *api.Auth
	if cfg.keys != "" {
		keys, err := api.LoadKeys(cfg.keys)
		if err != nil {
			return fmt.Errorf("--keys: %w", err)
		}
		auth = api.NewAuth(keys, cfg.keyLimits)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				keys, err := api.LoadKeys(cfg.keys)
				if err != nil {
					log.Error("reloading the keys on SIGHUP: kept the keys in use", "err", err)
					continue
				}
				auth.Load(keys)
				log.Info("reloaded the keys on SIGHUP", "file", cfg.keys, "keys", keys.Len())
			}
		}()
		log.Info("API keys", "file", cfg.keys, "keys", keys.Len())
	}
	if !isLoopback(host) {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			cfg.guard.Hosts = append(cfg.guard.Hosts, strings.ToLower(host)) // the address clients dial
		} else if len(cfg.guard.Hosts) == 0 {
			return fmt.Errorf("--addr %s serves the network: give --allow_host with the names clients reach it by (requests for any other Host get 421, against DNS rebinding)", cfg.addr)
		}
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if auth == nil && !isLoopback(host) {
		log.Warn("serving beyond loopback without API keys (--insecure_no_auth): anyone who reaches the port reads every app", "addr", cfg.addr)
	}
	svc := api.NewService(&serving.Querier{Store: serving.NewReadCache(serving.WithTimeout(st, cfg.timeout), cfg.cache)})
	log.Info("serving", "addr", "http://"+ln.Addr().String(), "store", serving.Redact(sf.store), "store_call_timeout", cfg.timeout,
		"batch_poll", cfg.cache.RunsTTL, "speed_cache", cfg.cache.SpeedTTL, "cache_bytes", cfg.cache.MaxBytes)
	return api.Serve(ctx, ln, api.Stack(api.NewHandler(svc, log, nil), cfg.guard, cfg.limits, auth), log, cfg.grace)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func runs(ctx context.Context, sf storeFlags, kind string, out io.Writer) error {
	kinds := event.Kinds
	if kind != "" && kind != "all" {
		k, err := event.ParseKind(kind)
		if err != nil {
			return fmt.Errorf("--kind: %w", err)
		}
		kinds = []event.Kind{k}
	}
	st, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tas_of\twindow_start\tstatus\tcomplete\tseconds\tcounted\ttoo_old\tclock_skew\tdead_letters\tnote")
	for _, k := range kinds {
		rs, err := st.Runs(ctx, k)
		if err != nil {
			return err
		}
		for _, r := range rs {
			secs := "-"
			if !r.Finished.IsZero() {
				secs = fmt.Sprintf("%.1f", r.Finished.Sub(r.Started).Seconds())
			}
			// complete: when an attempt of this as_of last succeeded on
			// complete input (what the watermark reads).
			complete := "-"
			if !r.CompleteAt.IsZero() {
				complete = r.CompleteAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", k, r.AsOf.Format(time.DateOnly), r.WindowStart.Format(time.DateOnly),
				r.Status, complete, secs, r.Counters["counted"], r.Counters["too_old"], r.Counters["clock_skew"], r.Counters["dead_letters"], r.Note)
		}
	}
	return tw.Flush()
}

func writeJSON(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, strings.TrimSpace(string(b)))
	return err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
