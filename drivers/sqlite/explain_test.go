package sqlite

import (
	"testing"

	"github.com/dbscrub/dbscrub/checks"
)

func TestChecksAreExplainers(t *testing.T) {
	tgt, err := Open("/nonexistent/never-opened.db")
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	cks, err := tgt.Checks(CheckIntegrity, CheckForeignKeys)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cks {
		e, ok := c.(checks.Explainer)
		if !ok || len(e.Statements()) == 0 {
			t.Errorf("check %s does not explain its statements", c.Name())
		}
	}
}
