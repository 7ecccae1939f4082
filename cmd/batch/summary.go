package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
)

// printSummary reads the run back from the store, so what it prints is what
// a query would answer.
func printSummary(ctx context.Context, w io.Writer, st serving.Store, cfg pipelines.BatchConfig, took time.Duration) error {
	window := aggregate.NewDayWindow(cfg.AsOf, cfg.WindowDays)
	total := map[string]int64{}
	var runCounters map[string]int64
	var states []string
	var watermark serving.BatchComplete
	for _, k := range event.Kinds {
		runs, err := st.Runs(ctx, k)
		if err != nil {
			return err
		}
		if w := serving.BatchCompleteOf(runs); k == event.Kinds[0] || w.Day.Before(watermark.Day) {
			watermark = w
		}
		for _, r := range runs {
			if r.AsOf.Equal(cfg.AsOf) {
				state := fmt.Sprintf("%s %s", k, r.Status)
				if r.Note != "" {
					state += " (" + r.Note + ")"
				}
				states = append(states, state)
				for c, n := range r.Counters {
					if strings.HasPrefix(c, "run.") {
						continue
					}
					total[c] += n
				}
				runCounters = r.Counters
				break
			}
		}
	}
	fmt.Fprintf(w, "lumen batch as_of %s, window %s (%d days), %.1fs\n",
		cfg.AsOf.Format(time.DateOnly), window, window.Days(), took.Seconds())
	fmt.Fprintf(w, "  read     %s files (%s), %s valid events\n", num(total["files"]), bytesStr(total["bytes"]), num(total["events"]))
	fromRaw, fromRollups := total["read.partitions_from_raw"], total["read.partitions_from_rollups"]
	fmt.Fprintf(w, "  from     %s partitions' rollups, and %s partitions' raw files (%s files, %s)", num(fromRollups), num(fromRaw),
		num(total["read.raw_files"]), bytesStr(total["read.raw_bytes"]))
	if n := total["read.partitions_from_state"]; n > 0 {
		fmt.Fprintf(w, "; %s unchanged partitions from the window state", num(n))
	}
	if n := total["read.rollups_rejected"]; n > 0 {
		fmt.Fprintf(w, "; %s rollups could not be used and were recomputed", num(n))
	}
	if n := total["read.rollup_write_errors"]; n > 0 {
		fmt.Fprintf(w, "; %s rollups could not be written", num(n))
	}
	fmt.Fprintln(w)
	if n := total["read.partitions_unversioned"]; n > 0 {
		fmt.Fprintf(w, "  rollups  not reused: %s lists no object versions (%s partitions read from raw, and not rolled up)\n",
			schemeOf(cfg.Input), num(n))
	}
	if n := total["read.rollups_skipped"]; n > 0 {
		fmt.Fprintf(w, "  rollups  not written for %s partitions with files that could not be read (unreadable_file); the next run reads them again\n", num(n))
	}
	fmt.Fprintf(w, "  counted  %s events; %s had device clocks ahead and were bucketed by received time (clock_skew)\n",
		num(total["counted"]), num(total["clock_skew"]))
	fmt.Fprintf(w, "  dropped  %s too_old (happened before %s; no batch run will count them)\n", num(total["too_old"]), window.First.Format(time.DateOnly))
	if total["after_window"] > 0 {
		fmt.Fprintf(w, "           %s after_window (bucket time after as_of)\n", num(total["after_window"]))
	}
	var reasons []string
	for c := range total {
		if strings.HasPrefix(c, "deadletter.") {
			reasons = append(reasons, c)
		}
	}
	sort.Slice(reasons, func(i, j int) bool { return total[reasons[i]] > total[reasons[j]] })
	if len(reasons) > 0 {
		fmt.Fprintf(w, "           %s dead letters, in %s:\n", num(total["dead_letters"]),
			deadletter.Dir(cfg.DeadLetterRoot, "batch", cfg.AsOf.Format(time.DateOnly)))
		for _, r := range reasons {
			fmt.Fprintf(w, "             %8s  %s\n", num(total[r]), strings.TrimPrefix(r, "deadletter."))
		}
	}
	fmt.Fprintf(w, "  wrote    %s count rows and %s daily sketch rows to %s", num(runCounters["run.count_rows"]), num(runCounters["run.user_rows"]), serving.Redact(cfg.Store))
	if runCounters["state.used"] == 1 {
		fmt.Fprintf(w, ": the rows that changed (%s left as they were)", num(total["rows.unchanged"]))
	}
	if n := runCounters["run.rows_deleted"]; n > 0 {
		fmt.Fprintf(w, "; deleted %s rows of the window it did not write", num(n))
	} else if n < 0 {
		fmt.Fprint(w, "; deleted the window's rows it did not write")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  state    %s\n", stateLine(runCounters))
	fmt.Fprintf(w, "  status   %s\n", strings.Join(states, "; "))
	if watermark.OK() {
		fmt.Fprintf(w, "  batch complete through %s (the watermark, for every kind)\n\n", watermark.Day.Format(time.DateOnly))
	} else {
		fmt.Fprint(w, "  no kind has a complete batch run yet: queries answer from the speed layer\n\n")
	}

	q := &serving.Querier{Store: st}
	apps, versions, err := topApps(ctx, q, 10, window.First, window.Last)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "top apps by loads\t loads\t crashes\t DAU %s\t MAU\t crash-free users\t\n", cfg.AsOf.Format("01-02"))
	for _, a := range apps {
		fmt.Fprintf(tw, "%s\t %s\t %s\t %s\t %s\t %.2f%%\t\n", a.AppID, num(a.Loads), num(a.Crashes), num(a.DAU), num(a.Active), 100*a.CrashFree())
	}
	tw.Flush()

	// The versions that most need attention: lowest crash-free users.
	var all []AppReport
	for _, vs := range versions {
		for _, v := range vs {
			if v.Active >= 20 {
				all = append(all, v)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].CrashFree() < all[j].CrashFree() })
	if len(all) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "lowest crash-free users by version\t users\t crashed\t crash-free users\t\n")
		for _, v := range all[:min(5, len(all))] {
			fmt.Fprintf(tw, "%s %s\t %s\t %s\t %.2f%%\t\n", v.AppID, v.Version, num(v.Active), num(v.Crashed), 100*v.CrashFree())
		}
		tw.Flush()
	}
	return nil
}

// stateLine says how the run used the window state (DESIGN §3,
// incremental identity) and whether it left one for the next run.
func stateLine(c map[string]int64) string {
	var s string
	switch {
	case c["state.used"] == 1:
		s = "used: the last run's window state"
		if n := c["state.bytes_read"]; n > 0 {
			s += " (" + bytesStr(n) + ")"
		}
		s += ", extended with the partitions that changed since"
	case c["state.rejected"] == 1:
		s = "rejected (see the status's note): every row written, as by a run with no state"
	case c["state.rebuilt"] == 1:
		s = "rebuilt: no window state of an earlier run; every row written"
	case c["state.full"] == 1:
		s = "full: every partition read from raw, every row written"
	default:
		return "none recorded"
	}
	if c["state.verified_new"] == 1 {
		s += " (--verify=new: only the arrival days since the state's were listed)"
	}
	if c["state.written"] == 1 {
		return s + "; a new state written for the next run"
	}
	return s + "; no state written (the next run merges the rollups)"
}

// schemeOf names the filesystem of a path: "gs://" for gs://bucket/root.
func schemeOf(path string) string {
	if i := strings.Index(path, "://"); i > 0 {
		return path[:i+3]
	}
	return path
}

func num(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
