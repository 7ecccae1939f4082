package archive

import (
	"context"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/lumenhq/lumen/io/blob"
)

// ObjectName names the files of the segment of (topic, partition) that
// starts at offset first: one per arrival hour the segment touched, each in
// its hour's directory, and one per day in the dead-letter directory. The
// name depends on nothing else, so it says which offsets a file may hold:
// first and above, up to where the next segment starts.
func ObjectName(topic string, partition int32, first int64) string {
	return fmt.Sprintf("%s-p%d-o%020d.avro", topic, partition, first)
}

var objectName = regexp.MustCompile(`^(.+)-p([0-9]+)-o([0-9]{20})\.avro$`)

// ParseObjectName is the inverse of ObjectName; ok is false for any other
// name (files written by other tools are never the archiver's to delete).
func ParseObjectName(name string) (topic string, partition int32, first int64, ok bool) {
	m := objectName.FindStringSubmatch(name)
	if m == nil {
		return "", 0, 0, false
	}
	p, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return "", 0, 0, false
	}
	first, err = strconv.ParseInt(m[3], 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	return m[1], int32(p), first, true
}

// cleanLeftovers deletes from dir the files of p's topic and partition
// that an earlier owner of the partition wrote but never committed. It runs
// once per directory per assignment, before the assignment's first write
// into that directory. Why that removes every duplicate and nothing else:
//
//   - The assignment consumes the partition in offset order from S =
//     p.start, the first offset it received: the group's committed offset
//     C, or the reset offset for a group without one. S > C only when the
//     log no longer holds C (retention overtook the archiver) or when a
//     group with nothing committed starts at latest; both skip records
//     anyway, and a file starting below S holds records that are not read
//     again, so it must stay.
//   - A committed segment ended below C (a commit is last+1), so its files
//     are named with a first offset below S and stay. A file named with a
//     first offset >= S belongs to a segment that was written and never
//     committed (kill -9 between the files and the commit, an output that
//     failed halfway, a lost partition, a failed commit) and holds only
//     records with offsets >= S.
//   - Every such record is consumed again by this assignment, and goes to
//     the same directory as before: its kind is its topic's, its hour is
//     its received_time's, and a dead letter's day is its Kafka
//     timestamp's; all are in the record. So this assignment writes into
//     that directory, and so calls cleanLeftovers for it, before the
//     segment holding the record commits. If the assignment ends first,
//     nothing of those records was committed and the next owner repeats
//     the argument with its own S.
//   - The rewritten segments may have other boundaries (a time-based roll
//     fires at another record), so leftovers must be deleted, not
//     overwritten.
//   - The assignment has written nothing into dir yet, so it never deletes
//     its own files (p.written double-checks). Files of other partitions
//     or topics, and names the archiver did not make, are left alone.
//
// A file being written is invisible until complete (a hidden temporary
// file renamed into place locally, one PUT or a completed multipart upload
// on S3, whose listings are strongly consistent), so a listing never sees
// half a file. Hidden local temporaries a crash left behind are deleted
// too; on S3, incomplete multipart uploads are left to the bucket's
// lifecycle rule (AbortIncompleteMultipartUpload).
//
// The one case this cannot cover is a zombie: an earlier owner that lost
// the partition without noticing (a long pause) and writes after this
// listing. Its commit is refused, but its file stays. Static membership
// (Config.InstanceID) fences such a member at its next heartbeat.
func (a *Archiver) cleanLeftovers(ctx context.Context, p *partition, dir string) error {
	if p.cleaned[dir] {
		return nil
	}
	files, err := blob.ListPrefix(ctx, dir+"/")
	if err != nil {
		return &OutputError{Op: "list", Path: dir, Err: err}
	}
	for _, f := range files {
		name := path.Base(f.Path)
		topic, part, first, ok := ParseObjectName(name)
		if !ok || topic != p.topic || part != p.partition || first < p.start || p.written[dir+"/"+name] {
			continue
		}
		if err := blob.Remove(ctx, f.Path); err != nil {
			return &OutputError{Op: "delete", Path: f.Path, Err: err}
		}
		a.stats.LeftoversRemoved++
		a.cfg.Logger.Info("archive: removed an uncommitted file of an earlier owner", "path", f.Path, "start", p.start)
	}
	if blob.IsLocal(dir) {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return &OutputError{Op: "list", Path: dir, Err: err}
		}
		for _, e := range entries {
			n, ok := strings.CutPrefix(e.Name(), ".")
			if !ok {
				continue
			}
			if i := strings.LastIndex(n, ".tmp-"); i > 0 {
				n = n[:i]
			}
			topic, part, first, ok := ParseObjectName(n)
			if ok && topic == p.topic && part == p.partition && first >= p.start {
				os.Remove(dir + "/" + e.Name()) // garbage either way: best effort
			}
		}
	}
	p.cleaned[dir] = true
	return nil
}
