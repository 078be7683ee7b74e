package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/dbscrub/dbscrub/checks"
)

// writeText prints a report for a person: one line per check, then every
// finding with its object, location, message and what to do next, then the
// verdict.
func writeText(w io.Writer, rep *checks.Report) {
	t := rep.Target
	version := ""
	if t.ServerVersion != "" {
		version = " " + t.ServerVersion
	}
	fmt.Fprintf(w, "dbscrub: %s (%s%s)\n\n", t.Name, t.Engine, version)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		detail := c.Reason
		if c.Status == checks.StatusHealthy {
			detail = fmt.Sprintf("%d objects, %s verified", c.Coverage.ObjectsVerified, bytesHuman(c.Coverage.BytesVerified))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Check, strings.ToUpper(string(c.Status)), detail)
	}
	tw.Flush()

	if fs := rep.Findings(); len(fs) > 0 {
		fmt.Fprintf(w, "\nFindings (%d):\n", len(fs))
		for _, f := range fs {
			where := f.Object
			if loc := f.Location.String(); loc != "" {
				where += " (" + loc + ")"
			}
			code := ""
			if f.Code != "" {
				code = " [" + f.Code + "]"
			}
			fmt.Fprintf(w, "  %s  %s  %s%s\n", strings.ToUpper(string(f.Severity)), f.Check, where, code)
			fmt.Fprintf(w, "      %s\n", f.Message)
			if f.Remedy != "" {
				fmt.Fprintf(w, "      what to do: %s\n", f.Remedy)
			}
		}
	}
	if nc := rep.NotCovered(); len(nc) > 0 {
		fmt.Fprintf(w, "\nNot verified (%d):\n", len(nc))
		for i, tr := range nc {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more (see --format json)\n", len(nc)-i)
				break
			}
			fmt.Fprintf(w, "  %s  %s: %s\n", tr.Object, tr.State, tr.Reason)
		}
	}

	cov := rep.Coverage
	fmt.Fprintf(w, "\n%d of %d tasks completed, %d skipped; %s of %s verified in %.1fs.\n",
		cov.TasksCompleted, cov.TasksPlanned, cov.TasksSkipped, bytesHuman(cov.BytesVerified), bytesHuman(cov.BytesPlanned), rep.DurationSeconds)
	fmt.Fprintln(w, verdict(rep))
}

func verdict(rep *checks.Report) string {
	switch err := rep.Err(); {
	case rep.Status == checks.StatusCorrupt:
		return "CORRUPT: " + rep.Reason + ". Do not migrate or copy this database; restore the damaged objects from a backup taken before the damage, and find the cause (disk, memory, power loss) first."
	case err != nil:
		return "NOT VERIFIED: " + rep.Reason + "."
	case rep.Status == checks.StatusWarning:
		return "OK, with warnings: " + rep.Reason + "."
	default:
		return "OK: every planned check ran to completion and found no corruption."
	}
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// writeExplain prints, for each check, the statements it runs.
func writeExplain(w io.Writer, t checks.TargetInfo, cks []checks.Check) {
	fmt.Fprintf(w, "-- dbscrub check --explain: %s (%s)\n", t.Name, t.Engine)
	fmt.Fprintf(w, "-- Nothing was run. Placeholders ($1, ?, @p1) stand for values known only at run time.\n")
	for _, c := range cks {
		fmt.Fprintf(w, "\n-- check %s\n", c.Name())
		e, ok := c.(checks.Explainer)
		if !ok {
			fmt.Fprintln(w, "-- (this check does not list its statements)")
			continue
		}
		for _, st := range e.Statements() {
			fmt.Fprintln(w, strings.TrimSpace(st)+terminator(st))
		}
	}
}

func terminator(st string) string {
	st = strings.TrimSpace(st)
	if strings.HasSuffix(st, ";") || strings.Contains(st[strings.LastIndex(st, "\n")+1:], "--") {
		return ""
	}
	return ";"
}
