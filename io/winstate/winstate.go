// Package winstate keeps a batch run's window state (DESIGN §3,
// incremental identity): the merged result of the run's window, per
// (kind, app), with what the next run needs to extend it rather than
// recompute it. A store's states live under the rollup root, apart from
// other stores' (Root):
//
//	<root>/dt=YYYY-MM-DD/<stamp>.json        a state's manifest, written last
//	<root>/dt=YYYY-MM-DD/<stamp>/<name>.ws   the shards it lists
//	<root>/runs/<start>-<stamp>              a run started (MarkStart)
//
// The manifest names the run (as_of, window, stamp), the format and the
// rollup semantics it was computed with, every arrival partition its
// aggregates include (the listing's hash, the partition's counters, time
// bounds and events per event day), and its shards, each with its size and
// SHA-256; its own SHA-256 covers the rest of it. A shard holds aggregates
// of some keys, cut to the window. A state is the manifest: shards it does
// not list are leftovers of a failed attempt.
//
// A state is never trusted without proof. Read and ReadShard return
// ErrInvalid for anything but an intact state of this Format and
// rollup.Semantics; whether a valid state may stand for a run's window
// (its window, its partitions against the listing, the runs started since
// it: StartedAfter) is the batch's to decide.
package winstate

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
)

// Format is the version of the state's files.
const Format = 1

// ErrInvalid classifies every reason a state cannot be used.
var ErrInvalid = errors.New("winstate: invalid")

// Part is what a state keeps of one arrival partition its aggregates
// include.
type Part struct {
	Partition raw.Partition
	// Hash is the rollup.Manifest hash of the listing the partition was
	// read from: the partition is unchanged while its listing hashes the
	// same.
	Hash     string
	Counters rollup.Counters
	Times    rollup.TimeBounds
	// Days counts the partition's valid events per event day (Unix ms of
	// the day), inside the window or not: any window's too_old and
	// after_window, and which days the partition touches.
	Days map[int64]int64
}

// Shard is one file of a state's aggregates.
type Shard struct {
	Name   string // under the state's directory
	Size   int64
	SHA256 string
	Keys   int
}

// State is a batch run's window state.
type State struct {
	AsOf       time.Time // midnight UTC
	WindowDays int
	Precision  uint8
	Grain      raw.Grain
	Stamp      int64     // the run's serving.BatchStamp
	Started    time.Time // when the run started (its MarkStart)
	Parts      []Part
	Shards     []Shard
}

// Root is where the states of the store storeURL live under rollupRoot:
// a directory named by a hash of the store's address (scheme, hosts and
// keyspace or path; not its credentials or options). A state stands for
// rows of one store: another store's is never found.
func Root(rollupRoot, storeURL string) string {
	id := storeURL
	if i := strings.IndexAny(id, "?#"); i >= 0 {
		id = id[:i]
	}
	if scheme, rest, ok := strings.Cut(id, "://"); ok {
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			rest = rest[at+1:]
		}
		id = scheme + "://" + rest
	}
	sum := sha256.Sum256([]byte(id))
	return strings.TrimSuffix(rollupRoot, "/") + "/state/" + hex.EncodeToString(sum[:8])
}

// Window is the state's window.
func (s State) Window() aggregate.DayWindow { return aggregate.NewDayWindow(s.AsOf, s.WindowDays) }

// Bytes is the size of the state's shards: what a run that uses it reads.
func (s State) Bytes() int64 {
	var n int64
	for _, sh := range s.Shards {
		n += sh.Size
	}
	return n
}

// Dir is where the state of as_of asOf and stamp keeps its shards.
func Dir(root string, asOf time.Time, stamp int64) string {
	return dayDir(root, asOf) + strconv.FormatInt(stamp, 10)
}

// Path is the manifest of the state of as_of asOf and stamp.
func Path(root string, asOf time.Time, stamp int64) string { return Dir(root, asOf, stamp) + ".json" }

func dayDir(root string, day time.Time) string {
	return strings.TrimSuffix(root, "/") + "/dt=" + day.UTC().Format(time.DateOnly) + "/"
}

// manifest is the JSON form of a State.
type manifest struct {
	Format     int            `json:"format"`
	Semantics  int            `json:"semantics"`
	AsOf       string         `json:"as_of"`
	WindowDays int            `json:"window_days"`
	Precision  int            `json:"precision"`
	Grain      string         `json:"grain"`
	Stamp      int64          `json:"stamp"`
	Started    time.Time      `json:"started"`
	Parts      []manifestPart `json:"parts"`
	Shards     []Shard        `json:"shards"`
	SHA256     string         `json:"sha256"` // of this manifest with SHA256 empty
}

type manifestPart struct {
	Partition   string           `json:"partition"`
	Hash        string           `json:"hash"`
	Files       int64            `json:"files"`
	Bytes       int64            `json:"bytes"`
	Events      int64            `json:"events"`
	ClockSkew   int64            `json:"clock_skew"`
	DeadLetters map[string]int64 `json:"dead_letters,omitempty"`
	Latest      int64            `json:"latest"`
	FutureFrom  int64            `json:"future_from"`
	Days        map[string]int64 `json:"days"` // YYYY-MM-DD → events
}

// Write writes s's manifest, atomically: the state exists once it has
// (its shards must be written before).
func Write(ctx context.Context, root string, s State) error {
	m := manifest{Format: Format, Semantics: rollup.Semantics, AsOf: s.AsOf.UTC().Format(time.DateOnly), WindowDays: s.WindowDays,
		Precision: int(s.Precision), Grain: s.Grain.String(), Stamp: s.Stamp, Started: s.Started.UTC(), Shards: s.Shards}
	parts := slices.Clone(s.Parts)
	slices.SortFunc(parts, func(a, b Part) int { return a.Partition.Compare(b.Partition) })
	for _, p := range parts {
		days := map[string]int64{}
		for d, n := range p.Days {
			days[time.UnixMilli(d).UTC().Format(time.DateOnly)] = n
		}
		m.Parts = append(m.Parts, manifestPart{Partition: p.Partition.String(), Hash: p.Hash, Files: p.Counters.Files, Bytes: p.Counters.Bytes,
			Events: p.Counters.Events, ClockSkew: p.Counters.ClockSkew, DeadLetters: p.Counters.DeadLetters,
			Latest: p.Times.Latest, FutureFrom: p.Times.FutureFrom, Days: days})
	}
	b, err := seal(m)
	if err != nil {
		return err
	}
	if err := blob.WriteFile(ctx, Path(root, s.AsOf, s.Stamp), b); err != nil {
		return fmt.Errorf("winstate: write %s: %w", Path(root, s.AsOf, s.Stamp), err)
	}
	return nil
}

// seal renders m with its checksum.
func seal(m manifest) ([]byte, error) {
	sum, err := checksum(m)
	if err != nil {
		return nil, err
	}
	m.SHA256 = sum
	return json.MarshalIndent(m, "", " ")
}

// checksum is the SHA-256 of m's JSON with its SHA256 field empty.
func checksum(m manifest) (string, error) {
	m.SHA256 = ""
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Read reads the state whose manifest is at p. A manifest that is gone,
// damaged, or of another Format or rollup.Semantics is ErrInvalid; a
// failure of the filesystem is returned as it is.
func Read(ctx context.Context, p string) (State, error) {
	b, err := readAll(ctx, p, 64<<20)
	if err != nil {
		return State{}, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrInvalid, p, err)
	}
	if sum, err := checksum(m); err != nil || sum != m.SHA256 {
		return State{}, fmt.Errorf("%w: %s: its checksum does not match its content", ErrInvalid, p)
	}
	switch {
	case m.Format != Format:
		return State{}, fmt.Errorf("%w: %s: format %d, this build reads %d", ErrInvalid, p, m.Format, Format)
	case m.Semantics != rollup.Semantics:
		return State{}, fmt.Errorf("%w: %s: semantics %d, this build's is %d", ErrInvalid, p, m.Semantics, rollup.Semantics)
	}
	s := State{WindowDays: m.WindowDays, Precision: uint8(m.Precision), Stamp: m.Stamp, Started: m.Started, Shards: m.Shards}
	var errs []error
	if s.AsOf, err = time.Parse(time.DateOnly, m.AsOf); err != nil {
		errs = append(errs, err)
	}
	if s.Grain, err = raw.ParseGrain(m.Grain); err != nil {
		errs = append(errs, err)
	}
	for _, mp := range m.Parts {
		p, err := raw.ParsePartition(mp.Partition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		part := Part{Partition: p, Hash: mp.Hash, Times: rollup.TimeBounds{Latest: mp.Latest, FutureFrom: mp.FutureFrom},
			Counters: rollup.Counters{Files: mp.Files, Bytes: mp.Bytes, Events: mp.Events, ClockSkew: mp.ClockSkew, DeadLetters: mp.DeadLetters},
			Days:     map[int64]int64{}}
		for d, n := range mp.Days {
			day, err := time.Parse(time.DateOnly, d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			part.Days[day.UnixMilli()] = n
		}
		s.Parts = append(s.Parts, part)
	}
	if err := errors.Join(errs...); err != nil {
		return State{}, fmt.Errorf("%w: %s: %v", ErrInvalid, p, err)
	}
	return s, nil
}

// Find lists the manifests of the states of as_of days in [first, last]
// under root, newest as_of first, and within a day newest stamp first.
func Find(ctx context.Context, root string, first, last time.Time) ([]string, error) {
	days, err := blob.ListDirs(ctx, strings.TrimSuffix(root, "/")+"/")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("winstate: list %s/: %w", root, err)
	}
	type found struct {
		day   time.Time
		stamp int64
		path  string
	}
	var all []found
	for _, d := range days {
		day, err := time.Parse("dt=2006-01-02", path.Base(strings.TrimSuffix(d, "/")))
		if err != nil || day.Before(first) || day.After(last) {
			continue
		}
		files, err := blob.ListPrefix(ctx, dayDir(root, day))
		if err != nil {
			return nil, fmt.Errorf("winstate: list %s: %w", dayDir(root, day), err)
		}
		for _, f := range files {
			name := path.Base(f.Path)
			stamp, err := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64)
			if err != nil || !strings.HasSuffix(name, ".json") || !strings.HasSuffix(path.Dir(f.Path), "dt="+day.Format(time.DateOnly)) {
				continue // a shard, or not lumen's
			}
			all = append(all, found{day, stamp, f.Path})
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		if c := b.day.Compare(a.day); c != 0 {
			return c
		}
		return cmp.Compare(b.stamp, a.stamp)
	})
	out := make([]string, len(all))
	for i, f := range all {
		out[i] = f.path
	}
	return out, nil
}

// shardMagic opens every shard file.
var shardMagic = []byte("LUMENWS1")

// WriteShard writes aggs as a new shard of the state of asOf and stamp,
// atomically, and returns it for the manifest.
func WriteShard(ctx context.Context, root string, asOf time.Time, stamp int64, aggs map[aggregate.AppKey]aggregate.Agg) (Shard, error) {
	keys := make([]aggregate.AppKey, 0, len(aggs))
	for k := range aggs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b aggregate.AppKey) int { return strings.Compare(a.String(), b.String()) })
	b := slices.Clone(shardMagic)
	for _, k := range keys {
		ab, err := aggregate.EncodeAgg(aggs[k])
		if err != nil {
			return Shard{}, err
		}
		kb := aggregate.EncodeAppKey(k)
		b = binary.AppendUvarint(b, uint64(len(kb)))
		b = append(b, kb...)
		b = binary.AppendUvarint(b, uint64(len(ab)))
		b = append(b, ab...)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Shard{}, err
	}
	sum := sha256.Sum256(b)
	sh := Shard{Name: hex.EncodeToString(id[:]) + ".ws", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Keys: len(keys)}
	p := Dir(root, asOf, stamp) + "/" + sh.Name
	if err := blob.WriteFile(ctx, p, b, blob.NoSync()); err != nil {
		return Shard{}, fmt.Errorf("winstate: write %s: %w", p, err)
	}
	return sh, nil
}

// ReadShard reads a shard of s (under root) and checks it against the
// manifest: size, SHA-256, and aggregates of s's precision counted per
// hour. Damage is ErrInvalid.
func ReadShard(ctx context.Context, root string, s State, sh Shard) (map[aggregate.AppKey]aggregate.Agg, error) {
	p := Dir(root, s.AsOf, s.Stamp) + "/" + sh.Name
	b, err := readAll(ctx, p, sh.Size+1)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != sh.Size || hex.EncodeToString(sum[:]) != sh.SHA256 {
		return nil, fmt.Errorf("%w: %s: %d bytes that do not hash as the manifest says (%d bytes)", ErrInvalid, p, len(b), sh.Size)
	}
	if !bytes.HasPrefix(b, shardMagic) {
		return nil, fmt.Errorf("%w: %s: not a state shard", ErrInvalid, p)
	}
	b = b[len(shardMagic):]
	out := make(map[aggregate.AppKey]aggregate.Agg, sh.Keys)
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: %s: a record runs past the end", ErrInvalid, p)
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	for len(b) > 0 {
		kb, err := next()
		if err != nil {
			return nil, err
		}
		ab, err := next()
		if err != nil {
			return nil, err
		}
		k, err := aggregate.DecodeAppKey(kb)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, p, err)
		}
		a, err := aggregate.DecodeAgg(ab)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, p, err)
		}
		if a.Gran != aggregate.Hour || a.Precision != s.Precision {
			return nil, fmt.Errorf("%w: %s: %v counts per %v at p=%d", ErrInvalid, p, k, a.Gran, a.Precision)
		}
		out[k] = a
	}
	if len(out) != sh.Keys {
		return nil, fmt.Errorf("%w: %s: %d keys, the manifest says %d", ErrInvalid, p, len(out), sh.Keys)
	}
	return out, nil
}

// Remove deletes the state whose manifest is at p: the manifest first, so
// no reader finds a state whose shards are going.
func Remove(ctx context.Context, p string) error {
	if err := blob.Remove(ctx, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := strings.TrimSuffix(p, ".json") + "/"
	files, err := blob.ListPrefix(ctx, dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := blob.Remove(ctx, f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readAll reads a whole file of at most limit bytes. A missing file is
// ErrInvalid; a failure of the filesystem is returned as it is.
func readAll(ctx context.Context, p string, limit int64) ([]byte, error) {
	rc, err := blob.OpenRange(ctx, p, 0, -1)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is gone: %v", ErrInvalid, p, err)
		}
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, p, limit)
	}
	return buf.Bytes(), nil
}

// MarkStart records that a run started at started, with stamp, before it
// writes anything: a state is trusted only if no run started after its
// own (StartedAfter), since such a run may have written rows the state
// does not know of (one killed while writing, say).
func MarkStart(ctx context.Context, root string, started time.Time, stamp int64) error {
	p := fmt.Sprintf("%s/runs/%d-%d", strings.TrimSuffix(root, "/"), started.UnixNano(), stamp)
	if err := blob.WriteFile(ctx, p, nil); err != nil {
		return fmt.Errorf("winstate: mark the run's start: %w", err)
	}
	return nil
}

// Mark is a run's start, as MarkStart recorded it.
type Mark struct {
	Started time.Time
	Stamp   int64
	Path    string
}

// Marks lists the runs' starts under root, oldest first.
func Marks(ctx context.Context, root string) ([]Mark, error) {
	files, err := blob.ListPrefix(ctx, strings.TrimSuffix(root, "/")+"/runs/")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("winstate: list the runs' starts: %w", err)
	}
	var out []Mark
	for _, f := range files {
		start, stamp, ok := strings.Cut(path.Base(f.Path), "-")
		ns, err1 := strconv.ParseInt(start, 10, 64)
		st, err2 := strconv.ParseInt(stamp, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		out = append(out, Mark{Started: time.Unix(0, ns).UTC(), Stamp: st, Path: f.Path})
	}
	slices.SortFunc(out, func(a, b Mark) int { return a.Started.Compare(b.Started) })
	return out, nil
}
