package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// rateSetting is one column of the max-rate experiment.
type rateSetting struct {
	name string
	rate float64 // MB/s; 0: unthrottled; <0: no check at all
	alt  bool    // add -alt-args to the check
}

func rateSettings(o *options) []rateSetting {
	s := []rateSetting{{name: "no check", rate: -1}, {name: "unthrottled", rate: 0}}
	for _, r := range o.MaxRates {
		name := strconv.FormatFloat(r, 'g', -1, 64) + " MB/s"
		s = append(s, rateSetting{name: name, rate: r})
		if len(o.AltArgs) > 0 {
			s = append(s, rateSetting{name: name + " " + strings.Join(o.AltArgs, " "), rate: r, alt: true})
		}
	}
	return s
}

// maxRateExperiment runs pgbench against the pgbench database alone, next
// to an unthrottled dbscrub check and next to checks with --max-rate,
// rotating the order of the settings between repetitions.
func maxRateExperiment(ctx context.Context, c *cluster, o *options, res *Results, save func() error) error {
	settings := rateSettings(o)
	logf("max-rate experiment: pgbench %s, %d clients, %d s; dbscrub --jobs %d", o.PgbenchMode, o.PgbenchC, o.PgbenchT, o.MaxRateJobs)
	// Warm up the cache and pgbench's tables.
	warm := *o
	warm.PgbenchT = 5
	if r := pgbenchRun(ctx, c, &warm, rateSetting{name: "warm-up", rate: -1}); r.Error != "" {
		return fmt.Errorf("pgbench warm-up: %s", r.Error)
	}
	for rep := 1; rep <= o.MaxRateReps; rep++ {
		n := len(settings)
		for i := range n {
			s := settings[(i+rep-1)%n]
			if err := ctx.Err(); err != nil {
				return err
			}
			for attempt := 1; ; attempt++ {
				r := pgbenchRun(ctx, c, o, s)
				r.Rep, r.Attempt = rep, attempt
				r.Noisy = o.MaxOther > 0 && r.OtherCores > o.MaxOther && attempt < o.Attempts
				res.MaxRate = append(res.MaxRate, r)
				note := ""
				if r.Noisy {
					note = "  (noisy: repeated)"
				}
				logf("  %-12s rep %d: %8.0f tps (min 1-s %6.0f), check verified %s (%.0f MB/s), others %.2f cores, cached %.0f%%→%.0f%%%s%s",
					s.name, rep, r.TPS, minOf(r.PerSecond), mb(r.BytesVerified), float64(r.BytesVerified)/1e6/float64(o.PgbenchT),
					r.OtherCores, 100*r.ResidentBefore, 100*r.ResidentAfter, errSuffix(r.Error), note)
				if err := save(); err != nil {
					return err
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				if !r.Noisy {
					break
				}
			}
		}
	}
	return nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "  ERROR: " + s
}

var (
	tpsRE      = regexp.MustCompile(`(?m)^tps = ([\d.]+)`)
	progressTP = regexp.MustCompile(`(?m)^progress: ([\d.]+) s, ([\d.]+) tps`)
)

// parsePgbench extracts the overall TPS (stdout) and the per-second TPS of
// -P 1 (stderr).
func parsePgbench(stdout, stderr string) (tps float64, perSecond []float64, err error) {
	m := tpsRE.FindStringSubmatch(stdout)
	if m == nil {
		return 0, nil, fmt.Errorf("no tps line in pgbench output: %s", firstLine(stdout+stderr))
	}
	tps, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range progressTP.FindAllStringSubmatch(stderr, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		perSecond = append(perSecond, v)
	}
	return tps, perSecond, nil
}

// pgbenchRun runs pgbench for o.PgbenchT seconds; unless s says no check,
// dbscrub checks of the pgbench database run back to back beside it, the
// last one interrupted (SIGINT) when pgbench ends.
func pgbenchRun(ctx context.Context, c *cluster, o *options, s rateSetting) MaxRateRun {
	r := MaxRateRun{Setting: s.name, MaxRate: max(s.rate, 0)}
	args := append(c.connArgs(), "-n", "-c", strconv.Itoa(o.PgbenchC), "-j", strconv.Itoa(o.PgbenchC),
		"-T", strconv.Itoa(o.PgbenchT), "-P", "1")
	if o.PgbenchMode == "select" {
		args = append(args, "-S")
	}
	args = append(args, dbPgbench)
	cmd := c.client("pgbench", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if o.Verbose {
		logf("  $ %s", strings.Join(cmd.Args, " "))
	}
	files, err := dbFiles(ctx, c, dbPgbench)
	if err == nil {
		err = prewarm(files)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	waitQuiet(ctx, o.Quiet, o.QuietWait)
	r.ResidentBefore = resident(files)
	smp := c.sample()
	if err := cmd.Start(); err != nil {
		r.Error = err.Error()
		return r
	}
	done := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(done)
	}()
	if s.rate >= 0 {
		start := time.Now()
		r.Checks = checkLoop(ctx, c, o, s, done)
		r.CheckSeconds = time.Since(start).Seconds()
		for _, ch := range r.Checks {
			r.BytesVerified += ch.BytesVerified
		}
	}
	<-done
	own := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	for _, ch := range r.Checks {
		own += time.Duration(ch.CPU * float64(time.Second))
	}
	r.OtherCores = c.otherCores(smp, own)
	r.ResidentAfter = resident(files)
	if werr != nil {
		r.Error = fmt.Sprintf("pgbench: %v: %s", werr, firstLine(stderr.String()))
		return r
	}
	r.TPS, r.PerSecond, err = parsePgbench(stdout.String(), stderr.String())
	if err != nil {
		r.Error = err.Error()
	}
	for _, ch := range r.Checks {
		if !ch.Interrupted && (ch.Exit != 0 || ch.Status != "healthy") {
			r.Error = fmt.Sprintf("a check ended with exit code %d, status %q", ch.Exit, ch.Status)
		}
	}
	return r
}

// checkLoop runs dbscrub checks back to back until done is closed, then
// interrupts the running one.
func checkLoop(ctx context.Context, c *cluster, o *options, s rateSetting, done <-chan struct{}) []LoopCheck {
	var out []LoopCheck
	for {
		select {
		case <-done:
			return out
		case <-ctx.Done():
			return out
		default:
		}
		args := dbscrubArgs(c, o, dbPgbench, o.MaxRateJobs, false)
		if s.rate > 0 {
			args = append(args, "--max-rate", strconv.FormatFloat(s.rate, 'g', -1, 64))
		}
		if s.alt {
			args = append(args, o.AltArgs...)
		}
		cmd := exec.Command(o.DbscrubBin, args...)
		cmd.Env = pgEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return append(out, LoopCheck{Exit: -1, Status: err.Error()})
		}
		w := make(chan error, 1)
		go func() { w <- cmd.Wait() }()
		var lc LoopCheck
		var err error
		select {
		case err = <-w:
		case <-done:
			lc.Interrupted = true
			_ = cmd.Process.Signal(os.Interrupt)
			err = <-w
		case <-ctx.Done():
			lc.Interrupted = true
			_ = cmd.Process.Signal(os.Interrupt)
			err = <-w
		}
		lc.Seconds = time.Since(start).Seconds()
		if cmd.ProcessState != nil {
			lc.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			lc.Exit = ee.ExitCode()
		} else if err != nil {
			lc.Exit = -1
		}
		var rep report
		if json.Unmarshal(stdout.Bytes(), &rep) == nil {
			lc.Status = rep.Status
			lc.BytesVerified = rep.Coverage.BytesVerified
		} else {
			lc.Status = "no report: " + firstLine(stderr.String())
		}
		out = append(out, lc)
		if lc.Interrupted {
			return out
		}
	}
}
