package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/internal/conformance"
	"github.com/dbscrub/dbscrub/internal/pgtest"
)

// conformanceSchema is the data every conformance database holds: a table
// with TOAST, indexes (one partial), a materialized view.
const conformanceSchema = `
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric NOT NULL, note text);
ALTER TABLE accounts ALTER COLUMN note SET STORAGE EXTERNAL; -- out of line, uncompressed: real TOAST chunks
INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5, CASE WHEN g % 50 = 0 THEN repeat(md5(g::text), 400) END FROM generate_series(1, 5000) g;
CREATE INDEX accounts_owner ON accounts (owner);
CREATE INDEX accounts_rich ON accounts (balance) WHERE balance > 5000;
CREATE TABLE events (id serial PRIMARY KEY, account bigint REFERENCES accounts, at timestamptz DEFAULT now());
INSERT INTO events (account) SELECT (g % 5000) + 1 FROM generate_series(1, 3000) g;
CREATE MATERIALIZED VIEW balances AS SELECT owner, balance FROM accounts;
`

var confDB atomic.Int64

func TestConformance(t *testing.T) {
	ctx := context.Background()
	newDB := func(t testing.TB, c *pgtest.Cluster) (string, *sql.DB) {
		t.Helper()
		name := fmt.Sprintf("conformance_%d", confDB.Add(1))
		dsn, err := c.CreateDatabase(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		// VACUUM sets the visibility map, so that the crosscheck's index-only
		// scans skip the heap and can see rows the heap has lost.
		for _, q := range []string{conformanceSchema, "VACUUM ANALYZE"} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		return dsn, db
	}
	// One cluster for all the damage: each injector stops and restarts it.
	damaged := pgtest.Fresh(t)
	broken := func(name, object string, checkNames []string, inject func(c *pgtest.Cluster, db string) error) conformance.Corruption {
		return conformance.Corruption{Name: name, Checks: checkNames, Make: func(t testing.TB) (string, string) {
			dsn, db := newDB(t, damaged)
			db.Close()
			dbname := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
			if err := inject(damaged, dbname); err != nil {
				t.Fatal(err)
			}
			return dsn, object
		}}
	}

	conformance.Run(t, conformance.Harness{
		Open: func(t testing.TB, dsn string) checks.Target {
			tg, err := Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tg.Close() })
			return tg
		},
		Clean: func(t testing.TB) string {
			dsn, _ := newDB(t, pgtest.Shared(t))
			return dsn
		},
		Corruptions: []conformance.Corruption{
			broken("heap tuple header", "accounts", nil, func(c *pgtest.Cluster, db string) error {
				return c.CorruptHeapTupleHeader(ctx, db, "accounts")
			}),
			broken("heap line pointer", "accounts", nil, func(c *pgtest.Cluster, db string) error {
				return c.CorruptLinePointer(ctx, db, "accounts")
			}),
			broken("btree leaf page", "accounts_owner", nil, func(c *pgtest.Cluster, db string) error {
				return c.CorruptBtreeLeaf(ctx, db, "accounts_owner")
			}),
			broken("page checksum", "accounts", nil, func(c *pgtest.Cluster, db string) error {
				return c.CorruptChecksum(ctx, db, "accounts")
			}),
			broken("toast chunk", "accounts", nil, func(c *pgtest.Cluster, db string) error {
				return c.CorruptToast(ctx, db, "accounts")
			}),
			broken("missing relation file", "events", nil, func(c *pgtest.Cluster, db string) error {
				return c.RemoveRelationFile(ctx, db, "events")
			}),
			broken("zeroed heap page", "accounts", []string{CheckCrosscheck}, func(c *pgtest.Cluster, db string) error {
				return c.ZeroHeapPage(ctx, db, "accounts", 1)
			}),
			broken("truncated heap", "accounts", []string{CheckCrosscheck}, func(c *pgtest.Cluster, db string) error {
				return c.TruncateHeap(ctx, db, "accounts", 2)
			}),
		},
		Unreachable: func(t testing.TB) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close() // nothing listens there now
			return fmt.Sprintf("postgres://scrub:Unreach4ble@127.0.0.1:%d/app?sslmode=disable&connect_timeout=5", port)
		},
		WrongPassword: func(t testing.TB) (string, string) {
			c := pgtest.Shared(t)
			if err := c.CreateUser(ctx, fmt.Sprintf("scrub_%d", confDB.Add(1)), "right-password"); err != nil {
				t.Fatal(err)
			}
			const wrong = "Wr0ngPassw0rd"
			return c.UserDSN(fmt.Sprintf("scrub_%d", confDB.Load()), wrong, "postgres"), wrong
		},
		MissingExtension: func(t testing.TB) (string, string) {
			dsn, err := pgtest.Shared(t).CreateDatabaseWithoutAmcheck(ctx, fmt.Sprintf("noamcheck_%d", confDB.Add(1)))
			if err != nil {
				t.Fatal(err)
			}
			return dsn, "CREATE EXTENSION amcheck"
		},
		Slow: func(t testing.TB) string {
			// Another session holds an ACCESS EXCLUSIVE lock on a table, so
			// the check waits on the server (up to lock_timeout) — long
			// enough to cancel it there.
			dsn, db := newDB(t, pgtest.Shared(t))
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			for _, q := range []string{"BEGIN", "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"} {
				if _, err := conn.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			return dsn
		},
		Busy: func(t testing.TB, dsn string) bool {
			db, err := sql.Open("postgres", pgtest.Shared(t).DSN("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			dbname := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = $1 AND application_name = 'dbscrub' AND state = 'active'`, dbname).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		},
		AllChecks: []string{CheckHeap, CheckBtree, CheckCrosscheck, CheckChecksums, CheckSettings},
		Snapshot: func(t testing.TB, dsn string) string {
			db, err := sql.Open("postgres", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var parts []string
			var catalog string
			if err := db.QueryRowContext(ctx, `SELECT md5(string_agg(c.oid || ':' || c.relname || ':' || c.relfilenode || ':' || c.relkind::text, ',' ORDER BY c.oid))
				FROM pg_class c`).Scan(&catalog); err != nil {
				t.Fatal(err)
			}
			parts = append(parts, "catalog="+catalog)
			for _, tbl := range []string{"accounts", "events", "balances"} {
				var sum string
				q := fmt.Sprintf("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM %s t", pq.QuoteIdentifier(tbl))
				if err := db.QueryRowContext(ctx, q).Scan(&sum); err != nil {
					t.Fatal(err)
				}
				parts = append(parts, tbl+"="+sum)
			}
			var ext string
			if err := db.QueryRowContext(ctx, `SELECT string_agg(extname || extversion, ',' ORDER BY extname) FROM pg_extension`).Scan(&ext); err != nil {
				t.Fatal(err)
			}
			return strings.Join(append(parts, "extensions="+ext), " ")
		},
	})
}
