// Package buildinfo gives every command its --version: the module's
// version and the commit it was built from, as the Go toolchain recorded
// them in the binary (runtime/debug.ReadBuildInfo).
package buildinfo

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
)

// String describes the build of cmd: "lumen batch <module version>
// commit <revision>[ (modified)] <date> go<version>".
func String(cmd string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "lumen " + cmd + " (no build information)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	parts := []string{"lumen", cmd, info.Main.Version}
	if rev := settings["vcs.revision"]; rev != "" {
		c := "commit " + rev
		if settings["vcs.modified"] == "true" {
			c += " (modified)"
		}
		parts = append(parts, c)
		if t := settings["vcs.time"]; t != "" {
			parts = append(parts, t)
		}
	} else {
		parts = append(parts, "commit unknown (built without VCS information: go run, or -buildvcs=false)")
	}
	return strings.Join(append(parts, info.GoVersion), " ")
}

// Flag registers --version on fs.
func Flag(fs *flag.FlagSet) *bool {
	return fs.Bool("version", false, "Print the version and the commit this binary was built from, and exit.")
}

// ExitIfAsked prints String(cmd) and exits 0 if asked is set.
func ExitIfAsked(asked *bool, cmd string) {
	if *asked {
		fmt.Println(String(cmd))
		os.Exit(0)
	}
}
