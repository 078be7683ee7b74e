// Package checks is the engine-agnostic core of dbscrub: the contract every
// integrity check follows, the findings and statuses it produces, the reports
// that roll them up, and the Runner that executes checks in parallel.
//
// # The one idea: a check plans, tasks run
//
// A [Check] looks at the live database and plans [Task]s: small, independent
// units of work with a stable key, the object they cover and an estimated
// cost in bytes (and, when the check can tell, in time). A huge table
// becomes many block-range tasks; thousands of tiny tables may become one
// batched task. The [Runner] executes tasks on N workers, longest first
// (one worker: in the order planned), under a context, a per-task timeout
// and a total time budget, and rolls their results up into a [Report].
//
// # Statuses never lie
//
//   - [StatusHealthy]: everything planned ran to completion and found nothing.
//   - [StatusWarning]: verified, but something puts data at risk, or the time
//     budget ended before every task ran (those tasks are listed as not
//     covered).
//   - [StatusCorrupt]: the engine itself reported corruption.
//   - [StatusError]: dbscrub could not verify: unreachable server, failed
//     authentication, missing extension or privilege, timeout, cancellation,
//     a server crash, a panic in a check.
//   - [StatusSkipped]: deliberately not run, with the reason.
//
// A report is never healthy when any planned task did not run to completion,
// and every status other than healthy carries a reason.
//
// Engines live in their own packages (drivers/postgres, drivers/sqlite, ...)
// and implement [Target] and [Check]; this package never imports a driver.
//
// # Options
//
// Everything in dbscrub is configured with functional options; invalid values
// are reported by the constructor ([NewRunner], [Gate]) as errors that wrap
// [ErrInvalidOption].
package checks
