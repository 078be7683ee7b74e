package checks

import (
	"encoding/json"
	"fmt"
)

// Status is the outcome of a task, a check or a whole target. Its string
// values are part of the JSON report schema and never change.
type Status string

// The statuses, from least to most severe.
const (
	// StatusSkipped means deliberately not run; the report says why.
	StatusSkipped Status = "skipped"
	// StatusHealthy means the planned work ran to completion and found nothing.
	StatusHealthy Status = "healthy"
	// StatusWarning means verified, but something puts data at risk, or not
	// every planned task ran within the time budget.
	StatusWarning Status = "warning"
	// StatusError means dbscrub could not verify.
	StatusError Status = "error"
	// StatusCorrupt means the engine reported corruption.
	StatusCorrupt Status = "corrupt"
)

// Severity orders statuses: a higher value is worse. Unknown statuses rank
// as errors so that they are never mistaken for success.
func (s Status) Severity() int {
	switch s {
	case StatusSkipped:
		return 0
	case StatusHealthy:
		return 1
	case StatusWarning:
		return 2
	case StatusError:
		return 3
	case StatusCorrupt:
		return 4
	default:
		return 3
	}
}

// Valid reports whether s is one of the five defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusSkipped, StatusHealthy, StatusWarning, StatusError, StatusCorrupt:
		return true
	}
	return false
}

// Worse returns the more severe of s and o.
func (s Status) Worse(o Status) Status {
	if o.Severity() > s.Severity() {
		return o
	}
	return s
}

// String returns the status name.
func (s Status) String() string { return string(s) }

// UnmarshalJSON rejects unknown status names.
func (s *Status) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if !Status(v).Valid() {
		return fmt.Errorf("checks: unknown status %q", v)
	}
	*s = Status(v)
	return nil
}
