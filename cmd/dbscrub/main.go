// Command dbscrub runs database integrity checks and exits non-zero when it
// finds corruption or cannot check, so that it can gate a migration or a
// disk move:
//
//	dbscrub check --dsn postgres://scrub@db.example.com/app && run-migrations
//
// Commands:
//
//	dbscrub check   run checks against one database and print a report
//	dbscrub checks  list the checks each engine offers
//	dbscrub version print the version
//
// Exit codes of dbscrub check (they follow pg_amcheck):
//
//	0  everything planned was verified and nothing is corrupt (warnings,
//	   such as data checksums being off, are printed but do not fail)
//	1  could not verify everything: bad input, unreachable server, failed
//	   authentication, missing extension or privilege, timeout, time budget
//	   ended first, cancelled, nothing matched
//	2  corruption found
//	3  only with --fail-on-warning: verified, no corruption, but warnings
//
// The DSN may also come from the DBSCRUB_DSN environment variable, which
// keeps a password out of the process list. Passwords never appear in
// output, errors or reports.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
