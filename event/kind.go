package event

import "fmt"

// Kind is one of the three event kinds lumen ingests. The zero value is not a
// valid kind, so a forgotten assignment is caught by Validate.
type Kind uint8

// The event kinds, in the order of DESIGN §1.
const (
	AppLoad Kind = iota + 1
	Crash
	HandledException
)

// Kinds lists every valid kind, in a fixed order.
var Kinds = []Kind{AppLoad, Crash, HandledException}

var kindNames = [...]string{AppLoad: "app_load", Crash: "crash", HandledException: "handled_exception"}
var recordNames = [...]string{AppLoad: "AppLoad", Crash: "Crash", HandledException: "HandledException"}

// String returns the kind's wire name ("app_load", "crash",
// "handled_exception"), which is also its topic suffix and its directory name
// in the raw layout.
func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is one of the three kinds.
func (k Kind) Valid() bool { return k >= AppLoad && k <= HandledException }

// RecordName is the Avro full name of the kind's record, e.g.
// "lumen.events.AppLoad".
func (k Kind) RecordName() string { return Namespace + "." + recordNames[k] }

// HasSignature reports whether the kind's schema carries a signature field.
func (k Kind) HasSignature() bool { return k == Crash || k == HandledException }

// ParseKind parses a wire name as returned by Kind.String.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("event: unknown kind %q (want app_load, crash or handled_exception)", s)
}
