// Package help prints a command's -h: lumen's own flags first, in named
// groups, then one line that points to Beam's flags (the runner, the job
// service, the environment), which --help_beam lists. Beam registers
// dozens of flags on the default flag set; mixed in, they hid lumen's.
package help

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Snapshot returns the names of the flags defined on fs so far. Package
// main calls it in its first package-level variable, before it defines a
// flag of its own: package variables are initialised after every imported
// package, so what it sees are the imports' flags, Beam's.
func Snapshot(fs *flag.FlagSet) map[string]bool {
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// Group is a titled list of flag names, printed in that order.
type Group struct {
	Title string
	Flags []string
}

// Help is a command's installed usage.
type Help struct {
	fs       *flag.FlagSet
	beam     map[string]bool
	synopsis string
	groups   []Group
	asked    *bool
}

// Install sets fs.Usage to print synopsis, then groups, then a pointer
// to the flags in beam, and defines --help_beam, which lists those. A
// lumen flag in no group is printed under "Other flags", so none is ever
// hidden.
func Install(fs *flag.FlagSet, beam map[string]bool, synopsis string, groups ...Group) *Help {
	h := &Help{fs: fs, beam: beam, synopsis: synopsis, groups: groups}
	h.asked = fs.Bool("help_beam", false, "List Beam's own flags (the runner, the job service, the environment), and exit.")
	fs.Usage = func() { h.Write(fs.Output()) }
	return h
}

// ExitIfBeamAsked prints Beam's flags and exits if --help_beam was given.
// Call it after fs.Parse.
func (h *Help) ExitIfBeamAsked() {
	if *h.asked {
		h.WriteBeam(os.Stdout)
		os.Exit(0)
	}
}

// Write prints the usage: the synopsis, lumen's flags by group, and the
// pointer to Beam's.
func (h *Help) Write(w io.Writer) {
	fmt.Fprintln(w, strings.TrimRight(h.synopsis, "\n"))
	seen := map[string]bool{"help_beam": true}
	for _, g := range h.groups {
		fmt.Fprintf(w, "\n%s:\n", g.Title)
		for _, name := range g.Flags {
			if f := h.fs.Lookup(name); f != nil && !seen[name] {
				seen[name] = true
				writeFlag(w, f)
			}
		}
	}
	var other []*flag.Flag
	nBeam := 0
	h.fs.VisitAll(func(f *flag.Flag) {
		switch {
		case h.beam[f.Name]:
			nBeam++
		case !seen[f.Name]:
			other = append(other, f)
		}
	})
	if len(other) > 0 {
		fmt.Fprintf(w, "\nOther flags:\n")
		for _, f := range other {
			writeFlag(w, f)
		}
	}
	if nBeam > 0 {
		fmt.Fprintf(w, "\nBeam's own %d flags (--runner, --endpoint, --environment_type, --job_name, …) are listed by --help_beam.\n", nBeam)
	}
}

// WriteBeam lists Beam's flags, sorted by name.
func (h *Help) WriteBeam(w io.Writer) {
	fmt.Fprintln(w, "Beam's own flags:")
	var fs []*flag.Flag
	h.fs.VisitAll(func(f *flag.Flag) {
		if h.beam[f.Name] {
			fs = append(fs, f)
		}
	})
	slices.SortFunc(fs, func(a, b *flag.Flag) int { return strings.Compare(a.Name, b.Name) })
	for _, f := range fs {
		writeFlag(w, f)
	}
}

// writeFlag prints one flag as flag.PrintDefaults does.
func writeFlag(w io.Writer, f *flag.Flag) {
	name, usage := flag.UnquoteUsage(f)
	line := "  --" + f.Name
	if name != "" {
		line += " " + name
	}
	line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
		if name == "string" {
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		} else {
			line += " (default " + f.DefValue + ")"
		}
	}
	fmt.Fprintln(w, line)
}
