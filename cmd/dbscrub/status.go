package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/scheduler/alarm"
	"github.com/dbscrub/dbscrub/scheduler/history"
)

// statusReport is the output of dbscrub status --format json
// (schema_version 1; fields are only ever added).
type statusReport struct {
	SchemaVersion int            `json:"schema_version"`
	History       string         `json:"history"`
	GeneratedAt   time.Time      `json:"generated_at"`
	Targets       []targetStatus `json:"targets"`
}

// targetStatus is what the history says about one target.
type targetStatus struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Configured is set with --config: false for a target the history
	// knows but the config no longer lists.
	Configured *bool `json:"configured,omitempty"`
	// FirstSeen is the first registration (zero: never registered).
	FirstSeen time.Time            `json:"first_seen,omitzero"`
	LastRun   *history.RunSummary  `json:"last_run,omitempty"`
	Checks    []history.CheckState `json:"checks"`
	// Alarms are the target's open (firing) alarms.
	Alarms []alarm.Alarm `json:"alarms"`
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dbscrub status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var configPath, historyPath, format string
	fs.StringVar(&configPath, "config", "", "the config file of dbscrub run, for its history path and targets (default $DBSCRUB_CONFIG, else dbscrub.yaml)")
	fs.StringVar(&historyPath, "history", "", "the history file, instead of --config")
	fs.StringVar(&format, "format", "text", "output format: text or json")
	fs.Usage = func() {}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "dbscrub status: "+format+"\n", args...)
		return exitError
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "Usage: dbscrub status [--config dbscrub.yaml | --history FILE] [--format text|json]\n\n"+
				"Prints each target's last run, the last success of each check, coverage and open alarms,\n"+
				"from the history that dbscrub run keeps. No daemon needs to run.\n\nFlags:\n")
			fs.PrintDefaults()
			return exitOK
		}
		return fail("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case format != "text" && format != "json":
		return fail("--format must be text or json, got %q", format)
	case configPath != "" && historyPath != "":
		return fail("give --config or --history, not both")
	}
	var cfg *runConfig
	if historyPath == "" {
		if configPath == "" {
			configPath = os.Getenv("DBSCRUB_CONFIG")
		}
		if configPath == "" {
			configPath = "dbscrub.yaml"
		}
		c, err := loadConfig(configPath, loadOptions{historyOnly: true})
		if err != nil {
			printConfigError(stderr, "dbscrub status", err)
			return exitError
		}
		cfg, historyPath = c, c.historyPath
	}
	if _, err := os.Stat(historyPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fail("no history at %s: dbscrub run has not recorded anything there yet", historyPath)
		}
		return fail("%v", err)
	}
	store, err := history.OpenSQLite(ctx, historyPath)
	if err != nil {
		return fail("%v", err)
	}
	defer store.Close()
	rep, err := collectStatus(ctx, store, cfg)
	if err != nil {
		return fail("reading %s: %v", historyPath, err)
	}
	rep.History = historyPath
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail("%v", err)
		}
		return exitOK
	}
	writeStatus(stdout, rep, time.Now())
	return exitOK
}

// collectStatus reads the state of every target from the store; with a
// config, targets it lists that never ran are included, and those it no
// longer lists are marked.
func collectStatus(ctx context.Context, store history.Store, cfg *runConfig) (*statusReport, error) {
	states, err := store.Targets(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := store.Alarms(ctx)
	if err != nil {
		return nil, err
	}
	firing := map[string][]alarm.Alarm{}
	for _, r := range recs {
		if r.State == alarm.StateFiring {
			firing[r.Target] = append(firing[r.Target], r.Alarm)
		}
	}
	configured := map[string]bool{}
	if cfg != nil {
		for _, t := range cfg.targets {
			configured[t.name] = true
		}
	}
	rep := &statusReport{SchemaVersion: 1, GeneratedAt: time.Now().UTC()}
	seen := map[string]bool{}
	for _, st := range states {
		ts := targetStatus{Name: st.Name, Labels: st.Labels, FirstSeen: st.FirstSeen, LastRun: st.LastRun, Checks: st.Checks, Alarms: firing[st.Name]}
		if cfg != nil {
			c := configured[st.Name]
			ts.Configured = &c
		}
		rep.Targets = append(rep.Targets, ts)
		seen[st.Name] = true
	}
	if cfg != nil {
		for _, t := range cfg.targets {
			if !seen[t.name] {
				yes := true
				rep.Targets = append(rep.Targets, targetStatus{Name: t.name, Labels: t.labels, Configured: &yes, Alarms: firing[t.name]})
				seen[t.name] = true
			}
		}
	}
	// Alarms of targets the store no longer lists (pruned) still count.
	for name, as := range firing {
		if !seen[name] {
			rep.Targets = append(rep.Targets, targetStatus{Name: name, Alarms: as})
		}
	}
	sort.Slice(rep.Targets, func(i, j int) bool { return rep.Targets[i].Name < rep.Targets[j].Name })
	for i := range rep.Targets {
		t := &rep.Targets[i]
		if t.Checks == nil {
			t.Checks = []history.CheckState{}
		}
		if t.Alarms == nil {
			t.Alarms = []alarm.Alarm{}
		}
		slices.SortFunc(t.Alarms, func(a, b alarm.Alarm) int { return strings.Compare(a.Key().String(), b.Key().String()) })
	}
	return rep, nil
}

// writeStatus prints the status for a person.
func writeStatus(w io.Writer, rep *statusReport, now time.Time) {
	if len(rep.Targets) == 0 {
		fmt.Fprintf(w, "No targets in %s yet.\n", rep.History)
		return
	}
	for i, t := range rep.Targets {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := t.Name
		if len(t.Labels) > 0 {
			keys := make([]string, 0, len(t.Labels))
			for k := range t.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for j, k := range keys {
				parts[j] = k + "=" + t.Labels[k]
			}
			head += "  (" + strings.Join(parts, ", ") + ")"
		}
		if t.Configured != nil && !*t.Configured {
			head += "  [no longer in the config]"
		}
		fmt.Fprintln(w, head)

		if r := t.LastRun; r != nil {
			verdict := strings.ToUpper(string(r.Status))
			if r.Reason != "" {
				verdict += ": " + r.Reason
			}
			fmt.Fprintf(w, "  last run  %s, run %d (%s), %s\n", when(r.StartedAt, now), r.ID, r.Trigger, verdict)
		} else {
			fmt.Fprintln(w, "  last run  never")
		}

		if len(t.Checks) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  check\tlast status\tlast success\tcoverage")
			for _, c := range t.Checks {
				success := "never"
				if !c.LastSuccessAt.IsZero() {
					success = when(c.LastSuccessAt, now)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Check, statusWord(c.LastStatus), success, coverageText(c.Coverage, now))
			}
			tw.Flush()
		}

		if len(t.Alarms) == 0 {
			fmt.Fprintln(w, "  alarms    none open")
			continue
		}
		fmt.Fprintf(w, "  alarms    %d open:\n", len(t.Alarms))
		for _, a := range t.Alarms {
			check := a.Check
			if check == "" {
				check = "(target)"
			}
			fmt.Fprintf(w, "    %s %s %s since %s: %s\n", strings.ToUpper(string(a.Severity)), a.Kind, check, when(a.FirstSeen, now), a.Summary)
		}
	}
}

func statusWord(s checks.Status) string {
	if s == "" {
		return "-"
	}
	return string(s)
}

// coverageText says how many of a check's objects were verified, how many
// never were, and which was verified least recently.
func coverageText(c history.CoverageSummary, now time.Time) string {
	if c.Keys == 0 {
		return "-"
	}
	s := fmt.Sprintf("%d of %d verified", c.Keys-c.NeverVerified, c.Keys)
	if !c.OldestVerifiedAt.IsZero() {
		s += fmt.Sprintf(", oldest %s %s", c.OldestVerifiedObject, age(now.Sub(c.OldestVerifiedAt)))
	}
	if c.NeverVerified > 0 {
		s += fmt.Sprintf(", %d never verified (%s, planned %s)", c.NeverVerified, c.OldestUnverifiedObject, age(now.Sub(c.OldestUnverifiedSince)))
	}
	return s
}

// when formats t in local time with its age: "2026-11-21 03:00:09 CET (2h ago)".
func when(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + " (" + age(now.Sub(t)) + ")"
}

func age(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
