package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/dbscrub/dbscrub/checks"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws "bytes done of bytes planned" on a terminal, once the
// run has lasted longer than a moment.
type progressBar struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	start   time.Time
	shown   bool
	lastLen int
}

// progressDelay is how long a run must last before a bar appears.
const progressDelay = 500 * time.Millisecond

func newProgressBar(w io.Writer, now func() time.Time) *progressBar {
	return &progressBar{w: w, now: now, start: now()}
}

func (b *progressBar) update(p checks.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.now().Sub(b.start) < progressDelay {
		return
	}
	const width = 30
	frac := 1.0
	if p.BytesTotal > 0 {
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	} else if p.TasksTotal > 0 {
		frac = float64(p.TasksDone) / float64(p.TasksTotal)
	}
	filled := int(frac * width)
	line := fmt.Sprintf("\r[%s%s] %3.0f%%  %s of %s  %d/%d tasks",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100,
		bytesHuman(p.BytesDone), bytesHuman(p.BytesTotal), p.TasksDone, p.TasksTotal)
	pad := ""
	if n := b.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(b.w, line+pad)
	b.lastLen = len(line)
	b.shown = true
}

// finish clears the bar so the report starts on a clean line.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shown {
		fmt.Fprint(b.w, "\r"+strings.Repeat(" ", b.lastLen)+"\r")
	}
}
