package checks

import (
	"strconv"
	"strings"
)

// A Finding is one problem a check found: corruption reported by the engine,
// or a risk worth a warning. Its fields are part of the JSON report schema.
type Finding struct {
	// Check is the name of the check that produced the finding. The Runner
	// fills it in when a task leaves it empty.
	Check string `json:"check"`
	// Task is the key of the task that produced the finding (set by the Runner).
	Task string `json:"task,omitempty"`
	// Severity is StatusCorrupt or StatusWarning. The Runner treats an empty
	// or unknown severity as StatusCorrupt: a finding is never ignored.
	Severity Status `json:"severity"`
	// Object names the damaged or risky object: a qualified relation name,
	// an index, a database, a setting.
	Object string `json:"object"`
	// Location pinpoints the damage inside the object, when the engine says.
	Location Location `json:"location,omitzero"`
	// Code is the engine's own error code (a SQLSTATE, a DBCC error number).
	Code string `json:"code,omitempty"`
	// Message is the engine's description of the problem.
	Message string `json:"message"`
	// Remedy tells a person what to do next.
	Remedy string `json:"remedy,omitempty"`
}

// Location pinpoints a finding inside an object. Every field is optional;
// a nil field was not reported by the engine. A zero value is a real
// location (block 0), not an absent one.
type Location struct {
	// File is the file number (SQL Server file id).
	File *int64 `json:"file,omitempty"`
	// Page is the page number: the block number in PostgreSQL, the page id in
	// SQL Server and SQLite.
	Page *int64 `json:"page,omitempty"`
	// Offset is the item within the page: a PostgreSQL line pointer (offnum)
	// or a SQL Server slot.
	Offset *int64 `json:"offset,omitempty"`
	// Attribute is the column number, when the damage is in one column.
	Attribute *int64 `json:"attribute,omitempty"`
}

// Int returns a pointer to v, for filling in a Location.
func Int(v int64) *int64 { return &v }

// IsZero reports whether no field of the location is set.
func (l Location) IsZero() bool {
	return l.File == nil && l.Page == nil && l.Offset == nil && l.Attribute == nil
}

// String formats the location for people, e.g. "page 12, offset 3".
// It returns "" for a zero location.
func (l Location) String() string {
	var parts []string
	add := func(name string, v *int64) {
		if v != nil {
			parts = append(parts, name+" "+strconv.FormatInt(*v, 10))
		}
	}
	add("file", l.File)
	add("page", l.Page)
	add("offset", l.Offset)
	add("attribute", l.Attribute)
	return strings.Join(parts, ", ")
}
