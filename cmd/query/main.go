// Command query answers questions from lumen's store, merging the batch and
// speed layers. Its JSON output is a contract other tools script against.
//
//	query counts --store S --kind app_load --app A [--version V] --granularity day|hour|minute --from FROM --to TO [--format json|table]
//	query users  --store S --kind app_load --app A [--version V] --from D1 --to D2 [--format json|table]
//	query runs   --store S [--kind K]
//
// FROM and TO are inclusive: days (YYYY-MM-DD) or RFC3339 times. With no
// --version, results are for all versions.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/cassandraio"
	"github.com/lumenhq/lumen/serving"
	_ "github.com/lumenhq/lumen/serving/cassandrastore" // cassandra:// stores
)

const usage = `usage:
  query counts --store S --kind KIND --app APP [--version V] --granularity day|hour|minute --from FROM --to TO [--format json|table]
  query users  --store S --kind KIND --app APP [--version V] --from DAY --to DAY [--format json|table]
  query runs   --store S [--kind KIND]
FROM/TO are inclusive days (YYYY-MM-DD) or RFC3339 times; KIND is app_load, crash or handled_exception.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	err := run(context.Background(), os.Args[1], os.Args[2:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

type common struct {
	store, kind, app, version, from, to, format string
	casUser, casPassFile                        string
}

func (c *common) register(fs *flag.FlagSet, withApp bool, defKind string) {
	fs.StringVar(&c.store, "store", "sqlite:lumen.db", "Store URL: sqlite:PATH or cassandra://…")
	fs.StringVar(&c.kind, "kind", defKind, "Event kind: app_load, crash or handled_exception.")
	fs.StringVar(&c.format, "format", "json", "Output: json (for scripts) or table (for people).")
	fs.StringVar(&c.casUser, "cassandra_username", "", "Cassandra user (or $LUMEN_CASSANDRA_USERNAME).")
	fs.StringVar(&c.casPassFile, "cassandra_password_file", "", "File holding the Cassandra password (or $LUMEN_CASSANDRA_PASSWORD).")
	if withApp {
		fs.StringVar(&c.app, "app", "", "App id (required).")
		fs.StringVar(&c.version, "version", "", "App version; empty means all versions.")
		fs.StringVar(&c.from, "from", "", "First day or time, inclusive (required).")
		fs.StringVar(&c.to, "to", "", "Last day or time, inclusive (required).")
	}
}

func run(ctx context.Context, cmd string, args []string, out io.Writer) error {
	var c common
	fs := flag.NewFlagSet("query "+cmd, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	switch cmd {
	case "counts":
		gran := fs.String("granularity", "day", "Bucket size: minute, hour or day.")
		c.register(fs, true, "app_load")
		if err := fs.Parse(args); err != nil {
			return err
		}
		g, err := aggregate.ParseGranularity(*gran)
		if err != nil {
			return fmt.Errorf("--granularity: %w", err)
		}
		return counts(ctx, c, g, out)
	case "users":
		c.register(fs, true, "app_load")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return users(ctx, c, out)
	case "runs":
		c.register(fs, false, "all")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return runs(ctx, c, out)
	case "-h", "--help", "help":
		fmt.Fprintln(out, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// parseTime parses an inclusive bound: a day or an RFC3339 time. A day as
// an upper bound means the end of that day.
func parseTime(name, v string, upper bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("--%s is required", name)
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if upper {
			return d.AddDate(0, 0, 1).Add(-time.Millisecond), nil
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: %q is neither YYYY-MM-DD nor RFC3339", name, v)
	}
	return t.UTC(), nil
}

func (c common) validate() (event.Kind, error) {
	var errs []error
	k, err := event.ParseKind(c.kind)
	if err != nil {
		errs = append(errs, fmt.Errorf("--kind: %w", err))
	}
	if c.app == "" {
		errs = append(errs, errors.New("--app is required"))
	}
	if c.format != "json" && c.format != "table" {
		errs = append(errs, fmt.Errorf("--format: %q, want json or table", c.format))
	}
	return k, errors.Join(errs...)
}

func open(ctx context.Context, c common) (*serving.Querier, func(), error) {
	if err := cassandraio.ExportCredentials(c.casUser, c.casPassFile); err != nil {
		return nil, nil, fmt.Errorf("--cassandra_password_file: %w", err)
	}
	st, err := serving.Open(ctx, c.store)
	if err != nil {
		return nil, nil, fmt.Errorf("--store: %w", err)
	}
	return &serving.Querier{Store: st}, func() { st.Close() }, nil
}

type countJSON struct {
	Bucket string `json:"bucket"`
	Count  int64  `json:"count"`
}

func counts(ctx context.Context, c common, g aggregate.Granularity, out io.Writer) error {
	k, err := c.validate()
	from, ferr := parseTime("from", c.from, false)
	to, terr := parseTime("to", c.to, true)
	if err = errors.Join(err, ferr, terr); err != nil {
		return err
	}
	q, closeFn, err := open(ctx, c)
	if err != nil {
		return err
	}
	defer closeFn()
	pts, err := q.Counts(ctx, serving.CountQuery{Kind: k, AppID: c.app, Version: c.version, Gran: g,
		From: g.TruncateTime(from), To: to})
	if err != nil {
		return err
	}
	if c.format == "table" {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "bucket (UTC)\t %s\t\n", c.kind)
		for _, p := range pts {
			fmt.Fprintf(tw, "%s\t %d\t\n", p.Bucket.Format(time.RFC3339), p.Count)
		}
		return tw.Flush()
	}
	rows := make([]countJSON, len(pts))
	for i, p := range pts {
		rows[i] = countJSON{Bucket: p.Bucket.Format(time.RFC3339), Count: p.Count}
	}
	return writeJSON(out, rows)
}

type usersJSON struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Estimate int64  `json:"estimate"`
}

func users(ctx context.Context, c common, out io.Writer) error {
	k, err := c.validate()
	from, ferr := time.Parse(time.DateOnly, c.from)
	if ferr != nil {
		ferr = fmt.Errorf("--from: %q is not YYYY-MM-DD", c.from)
	}
	to, terr := time.Parse(time.DateOnly, c.to)
	if terr != nil {
		terr = fmt.Errorf("--to: %q is not YYYY-MM-DD", c.to)
	}
	if err = errors.Join(err, ferr, terr); err != nil {
		return err
	}
	if to.Before(from) {
		return errors.New("--to is before --from")
	}
	q, closeFn, err := open(ctx, c)
	if err != nil {
		return err
	}
	defer closeFn()
	res, err := q.Users(ctx, serving.UserQuery{Kind: k, AppID: c.app, Version: c.version, From: from, To: to})
	if err != nil {
		return err
	}
	if c.format == "table" {
		_, err := fmt.Fprintf(out, "%s distinct devices of %s %s, %s..%s: %d (%d batch days, %d speed days)\n",
			c.kind, c.app, versionLabel(c.version), c.from, c.to, res.Estimate, res.BatchDays, res.SpeedDays)
		return err
	}
	return writeJSON(out, usersJSON{From: c.from, To: c.to, Estimate: res.Estimate})
}

func versionLabel(v string) string {
	if v == "" {
		return "(all versions)"
	}
	return v
}

func runs(ctx context.Context, c common, out io.Writer) error {
	q, closeFn, err := open(ctx, c)
	if err != nil {
		return err
	}
	defer closeFn()
	kinds := event.Kinds
	if c.kind != "" && c.kind != "all" {
		k, err := event.ParseKind(c.kind)
		if err != nil {
			return fmt.Errorf("--kind: %w", err)
		}
		kinds = []event.Kind{k}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tas_of\twindow_start\tstatus\tseconds\tcounted\ttoo_old\tclock_skew\tdead_letters")
	for _, k := range kinds {
		rs, err := q.Store.Runs(ctx, k)
		if err != nil {
			return err
		}
		for _, r := range rs {
			secs := "-"
			if !r.Finished.IsZero() {
				secs = fmt.Sprintf("%.1f", r.Finished.Sub(r.Started).Seconds())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", k, r.AsOf.Format(time.DateOnly), r.WindowStart.Format(time.DateOnly),
				r.Status, secs, r.Counters["counted"], r.Counters["too_old"], r.Counters["clock_skew"], r.Counters["dead_letters"])
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
