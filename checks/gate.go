package checks

import "context"

// Gate runs checks against t and returns the report and an error that says
// whether it is safe to go on: nil when every planned task completed and
// nothing is corrupt; an error wrapping [ErrCorrupt] when corruption was
// found; an error wrapping [ErrNotVerified] when dbscrub could not verify
// everything (unreachable, missing privileges, time budget, cancellation).
// Use it before a migration or a disk move. Without [WithChecks], the
// target's default checks run.
//
// Invalid options give a nil report and an error wrapping [ErrInvalidOption].
func Gate(ctx context.Context, t Target, opts ...Option) (*Report, error) {
	r, err := NewRunner(opts...)
	if err != nil {
		return nil, err
	}
	rep := r.Run(ctx, t)
	return rep, rep.Err()
}
