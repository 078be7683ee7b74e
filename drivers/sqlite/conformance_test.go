package sqlite

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/conformance"
	"github.com/dbscrub/dbscrub/internal/sqlitetest"
)

// TestConformance holds the driver to the contract every dbscrub driver
// meets (internal/conformance).
func TestConformance(t *testing.T) {
	damaged := func(damage func(t testing.TB, path string) string) func(t testing.TB) (string, string) {
		return func(t testing.TB) (string, string) {
			p := sample(t)
			return p, damage(t, p)
		}
	}
	conformance.Run(t, conformance.Harness{
		Open:  func(t testing.TB, dsn string) checks.Target { return open(t, dsn) },
		Clean: func(t testing.TB) string { return sample(t) },
		Corruptions: []conformance.Corruption{{
			Name: "table b-tree page",
			Make: damaged(func(t testing.TB, p string) string {
				if err := sqlitetest.DamagePage(p, rootPage(t, p, sqlitetest.SampleOrders)); err != nil {
					t.Fatal(err)
				}
				return sqlitetest.SampleOrders
			}),
		}, {
			Name: "index entry",
			Make: damaged(func(t testing.TB, p string) string {
				if err := sqlitetest.DamageIndex(p, sqlitetest.SampleIndex); err != nil {
					t.Fatal(err)
				}
				return sqlitetest.SampleIndex
			}),
		}, {
			Name:   "orphan row",
			Checks: []string{CheckForeignKeys},
			Make: damaged(func(t testing.TB, p string) string {
				if err := sqlitetest.BreakForeignKey(p); err != nil {
					t.Fatal(err)
				}
				return sqlitetest.SampleOrders
			}),
		}, {
			Name: "not a database",
			Make: func(t testing.TB) (string, string) {
				p := filepath.Join(t.TempDir(), "garbage.db")
				if err := os.WriteFile(p, []byte("garbage, not SQLite format 3; padding up to the header length.................................................."), 0o644); err != nil {
					t.Fatal(err)
				}
				return p, "garbage.db"
			},
		}},
		// No server: a missing file is what cannot be reached.
		Unreachable: func(t testing.TB) string { return filepath.Join(t.TempDir(), "missing.db") },
		Slow:        slowDB,
		AllChecks:   []string{CheckIntegrity, CheckForeignKeys},
		Snapshot:    func(t testing.TB, dsn string) string { return snapshot(t, dsn) },
	})
}
