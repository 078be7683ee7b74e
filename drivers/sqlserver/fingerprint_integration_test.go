package sqlserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/sqlserver"
	"github.com/dbscrub/dbscrub/drivers/sqlserver/sqlservertest"
)

// TestIntegrationFingerprint fingerprints a throwaway database on the
// server named by DBSCRUB_SQLSERVER_DSN (skipped loudly without it): every
// type whose rendering needs care, a table without a key, a composite key;
// twice with the same result (READ COMMITTED, then SNAPSHOT); then it
// changes one row, and NULL to an empty string, and checks that
// checks.Compare and the RangeHasher locate them.
func TestIntegrationFingerprint(t *testing.T) {
	dsn := sqlservertest.DSN(t)
	name, dbDSN := sqlservertest.CreateDatabase(t, dsn) // dbo.t: id 1..2000, a clustered primary key
	db := sqlservertest.Open(t, dbDSN)
	sqlservertest.Exec(t, db, `CREATE TABLE dbo.types (
  id int NOT NULL CONSTRAINT pk_types PRIMARY KEY,
  f float NULL, r real NULL, m money NULL, d decimal(18,4) NULL,
  dt datetime NULL, dt2 datetime2(7) NULL, dto datetimeoffset NULL, dd date NULL, tm time(3) NULL,
  s nvarchar(50) NULL, v varchar(50) NULL, c char(3) NULL, b varbinary(20) NULL, g uniqueidentifier NULL,
  x xml NULL, sv sql_variant NULL, geo geography NULL, h hierarchyid NULL, tx ntext NULL,
  total AS (id * 2), ver rowversion);
INSERT INTO dbo.types (id, f, r, m, d, dt, dt2, dto, dd, tm, s, v, c, b, g, x, sv, geo, h, tx) VALUES
 (1, 0.1, 0.1, 12.3456, 1.5, '2024-01-02T03:04:05.007', '2024-01-02T03:04:05.1234567', '2024-01-02T03:04:05.1+01:00', '2024-01-02', '03:04:05.123',
  N'ünïcode "quoted" \ /', 'a,b', 'x', 0x00FF, NEWID(), N'<a b="1"/>', CAST(1 AS int), geography::Point(47.6, -122.3, 4326), hierarchyid::Parse('/1/2/'), N'long'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -0.0, 1e38, -922337203685477.5808, -0.0001, '1753-01-01', '0001-01-01', '9999-12-31T23:59:59.9999999+14:00', '0001-01-01', '00:00:00',
  N'', '', '', 0x, '00000000-0000-0000-0000-000000000000', N'', CAST('1' AS varchar(1)), NULL, hierarchyid::GetRoot(), N'');
CREATE TABLE dbo.nokey (a int NULL, b nvarchar(10) NULL);
INSERT INTO dbo.nokey VALUES (1, N'x'), (1, N'x'), (NULL, N'');
CREATE TABLE dbo.composite (k1 nvarchar(10) NOT NULL, k2 datetime2(3) NOT NULL, v int NULL, CONSTRAINT pk_composite PRIMARY KEY (k1, k2));
WITH n AS (SELECT TOP (300) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS i FROM sys.all_columns)
INSERT INTO dbo.composite SELECT CHAR(65 + i % 5) + N'-' + CAST(i % 3 AS nvarchar(2)), DATEADD(MILLISECOND, i * 7, CAST('2024-01-01' AS datetime2(3))), i FROM n;`)

	tg, err := sqlserver.Open(dbDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	take := func(opts ...checks.FingerprintOption) *checks.Fingerprint {
		t.Helper()
		fp, err := tg.Fingerprint(ctx, opts...)
		if err != nil {
			t.Fatalf("Fingerprint: %v", err)
		}
		if err := fp.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return fp
	}
	identical := func(a, b *checks.Fingerprint) {
		t.Helper()
		d, err := checks.Compare(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Identical {
			j, _ := json.MarshalIndent(d, "", "  ")
			t.Errorf("fingerprints of the same data differ: %s", j)
		}
	}

	// A new database does not allow snapshot isolation: READ COMMITTED,
	// and the fingerprint says it is not one snapshot.
	fp1 := take(checks.WithChunkRows(100))
	t.Logf("snapshot: %s", fp1.Snapshot)
	if !strings.Contains(fp1.Snapshot, "NOT ONE SNAPSHOT") {
		t.Errorf("snapshot = %q, want the READ COMMITTED fallback", fp1.Snapshot)
	}
	for _, tf := range fp1.Tables {
		t.Logf("%s: %d rows, %d chunks, keyed %v, hash %s, note %q", tf.Name, tf.Rows, len(tf.Chunks), tf.Keyed, tf.Hash, tf.Note)
	}
	tt := fp1.Table("dbo.t")
	if tt == nil || tt.Rows != 2000 || len(tt.Chunks) != 20 || !tt.Keyed || string(tt.Chunks[0].Upper[0]) != "100" {
		t.Fatalf("dbo.t = %+v", tt)
	}
	if nk := fp1.Table("dbo.nokey"); nk == nil || nk.Keyed || nk.Rows != 3 || !strings.Contains(nk.Note, "no primary key") {
		t.Errorf("dbo.nokey = %+v", nk)
	}
	ty := fp1.Table("dbo.types")
	if ty == nil || ty.Rows != 3 || !strings.Contains(ty.Note, "[total] computed") || !strings.Contains(ty.Note, "[ver] rowversion") {
		t.Fatalf("dbo.types = %+v", ty)
	}
	for _, c := range ty.Columns {
		if c.Name == "total" || c.Name == "ver" {
			t.Errorf("column %s is hashed", c.Name)
		}
	}

	// The same data, fingerprinted again in other chunks: the same.
	identical(fp1, take(checks.WithChunkRows(7)))
	identical(fp1, take(checks.WithChunkRows(1<<62)))

	// With snapshot isolation allowed: one SNAPSHOT transaction, the same
	// hashes.
	sqlservertest.Exec(t, sqlservertest.Open(t, dsn), "ALTER DATABASE "+sqlservertest.QuoteName(name)+" SET ALLOW_SNAPSHOT_ISOLATION ON")
	fp2 := take(checks.WithChunkRows(100))
	if !strings.HasPrefix(fp2.Snapshot, "one SNAPSHOT isolation transaction") {
		t.Errorf("snapshot = %q", fp2.Snapshot)
	}
	identical(fp1, fp2)

	// Composite keys: chunk bounds round-trip through their text.
	comp := take(checks.WithTables("composite"), checks.WithChunkRows(7)).Table("dbo.composite")
	if comp == nil || comp.Rows != 300 || len(comp.Chunks) != 43 || comp.Hash != fp1.Table("dbo.composite").Hash {
		t.Errorf("dbo.composite in chunks of 7: %+v", comp)
	}

	// Change one row and NULL to an empty string.
	sqlservertest.Exec(t, db, "SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON; UPDATE dbo.t SET payload = REPLICATE('Z', 400) WHERE id = 1234; UPDATE dbo.types SET s = N'' WHERE id = 2;")
	fp3 := take(checks.WithBoundsFrom(fp1))
	d, err := checks.Compare(fp1, fp3)
	if err != nil {
		t.Fatal(err)
	}
	if d.Identical || len(d.Tables) != 2 {
		t.Fatalf("diff = %+v", d)
	}
	for _, td := range d.Tables {
		t.Logf("differs: %s %v", td.Name, td.Ranges)
		want := map[string]string{"dbo.t": "(1200, 1300]", "dbo.types": "(-inf, +inf)"}[td.Name]
		if len(td.Ranges) != 1 || td.Ranges[0].String() != want || td.Ranges[0].RowDelta != 0 {
			t.Errorf("%s: ranges %v, want %s with no row delta", td.Name, td.Ranges, want)
		}
	}

	// The RangeHasher finds the row.
	keys, err := tg.SplitRange(ctx, "dbo.t", checks.KeyRange{Lower: checks.Key{json.RawMessage("1230")}, Upper: checks.Key{json.RawMessage("1240")}}, 4)
	if err != nil || len(keys) != 2 || keys[0].String() != "1234" || keys[1].String() != "1238" {
		t.Errorf("SplitRange = %v, %v", keys, err)
	}
	chunks, err := tg.HashRanges(ctx, "dbo.t", []checks.KeyRange{
		{Lower: checks.Key{json.RawMessage("1233")}, Upper: checks.Key{json.RawMessage("1234")}},
		{Lower: checks.Key{json.RawMessage("1200")}, Upper: checks.Key{json.RawMessage("1300")}},
	})
	if err != nil || len(chunks) != 2 || chunks[0].Rows != 1 || chunks[1].Rows != 100 || chunks[1].Hash != fp3.Table("dbo.t").Chunks[12].Hash {
		t.Errorf("HashRanges = %+v, %v", chunks, err)
	}

	// Comparing the stored fingerprint with the live database says the same.
	ld, err := checks.CompareSources(ctx, checks.StoredSource(fp1), checks.LiveSource(tg))
	if err != nil || len(ld.Tables) != 2 {
		t.Errorf("CompareSources = %+v, %v", ld, err)
	}
}
