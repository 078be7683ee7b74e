package postgres

import (
	"strings"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
)

func TestChecksAreExplainers(t *testing.T) {
	tgt, err := Open("postgres://scrub:pw@127.0.0.1:1/app")
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	var names []string
	for _, c := range Catalog() {
		names = append(names, c.Name)
	}
	cks, err := tgt.Checks(names...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{CheckHeap: "verify_heapam", CheckBtree: "bt_index_check", CheckCrosscheck: "Index Only Scan", CheckChecksums: "checksum_failures", CheckSettings: "pg_settings"}
	for _, c := range cks {
		e, ok := c.(checks.Explainer)
		if !ok {
			t.Fatalf("check %s does not explain its statements", c.Name())
		}
		all := strings.Join(e.Statements(), "\n")
		if !strings.Contains(all, want[c.Name()]) || !strings.Contains(all, "READ ONLY") {
			t.Errorf("check %s explains:\n%s", c.Name(), all)
		}
		if strings.Contains(all, "pw") {
			t.Errorf("explain shows the password")
		}
	}
}
