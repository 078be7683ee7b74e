package checks

import "context"

// An Observer is told about a run as it happens, for telemetry (spans,
// metrics, logs). The Runner calls it from several goroutines at once:
// implementations must be safe for concurrent use, fast, and must not panic.
//
// The Started methods return the context passed on to what happens inside:
// CheckStarted's context is the parent of that check's TaskStarted calls,
// and TaskStarted's context is the one the task runs under, so spans nest
// run → check → task. Returned contexts must derive from the context given
// (so that cancelling the run cancels the task).
type Observer interface {
	RunStarted(ctx context.Context, target TargetInfo) context.Context
	CheckStarted(ctx context.Context, check string) context.Context
	TaskStarted(ctx context.Context, check string, task Task) context.Context
	// TaskFinished is called once per task that was not skipped at
	// planning, including tasks that never started (not covered, cancelled).
	TaskFinished(ctx context.Context, check string, task TaskReport, findings []Finding)
	// CheckFinished is called once per check, after its report is final.
	CheckFinished(ctx context.Context, report *CheckReport)
	// RunFinished is called once, after the report is final.
	RunFinished(ctx context.Context, report *Report)
}

// NopObserver does nothing; embed it to implement only some methods.
type NopObserver struct{}

// RunStarted returns ctx.
func (NopObserver) RunStarted(ctx context.Context, _ TargetInfo) context.Context { return ctx }

// CheckStarted returns ctx.
func (NopObserver) CheckStarted(ctx context.Context, _ string) context.Context { return ctx }

// TaskStarted returns ctx.
func (NopObserver) TaskStarted(ctx context.Context, _ string, _ Task) context.Context { return ctx }

// TaskFinished does nothing.
func (NopObserver) TaskFinished(context.Context, string, TaskReport, []Finding) {}

// CheckFinished does nothing.
func (NopObserver) CheckFinished(context.Context, *CheckReport) {}

// RunFinished does nothing.
func (NopObserver) RunFinished(context.Context, *Report) {}
