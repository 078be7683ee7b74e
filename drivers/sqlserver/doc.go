// Package sqlserver is dbscrub's SQL Server driver: it runs SQL Server's own
// integrity checks (DBCC CHECKDB and friends) through go-mssqldb and turns
// every error they report into a finding with the object, index, file, page
// and slot, the error number and a remedy. It also reads what SQL Server
// already knows: damaged pages in msdb.dbo.suspect_pages, the last clean
// DBCC CHECKDB, the PAGE_VERIFY option and the backup history. It does
// what Ola Hallengren's DatabaseIntegrityCheck and dbatools'
// Get-DbaLastGoodCheckDb / Get-DbaSuspectPage do, with findings instead of
// log text. And it takes content fingerprints (see Fingerprints below), to
// prove that a copy holds every row of the original.
//
// # Connecting
//
// [Open] takes a sqlserver:// URL or an ADO connection string, as
// go-mssqldb does:
//
//	sqlserver://dbscrub:password@sql1.example.com:1433?database=Sales
//	sqlserver://dbscrub:password@sql1.example.com/INSTANCE?database=Sales
//	server=sql1.example.com;user id=dbscrub;password=...;database=Sales
//
// Sessions show the application name dbscrub (unless the DSN sets "app
// name"). [New] takes a *sql.DB you own, whose driver is go-mssqldb:
// "sqlserver", or "azuresql" (import _ "github.com/microsoft/go-mssqldb/azuread")
// for Microsoft Entra ID authentication. A Target checks one database: the
// one its connections open.
//
// # Checks
//
//	checkdb          (default) DBCC CHECKDB (@db) WITH NO_INFOMSGS, ALL_ERRORMSGS, TABLERESULTS
//	                 [, PHYSICAL_ONLY | DATA_PURITY] [, EXTENDED_LOGICAL_CHECKS] [, TABLOCK] [, MAXDOP = n]
//	checktable       DBCC CHECKTABLE on each table and indexed view: one task each, largest first,
//	                 keyed [schema].[name], so a time budget spreads a huge database over nights
//	checkalloc       DBCC CHECKALLOC (with checktable and checkcatalog: what checkdb covers)
//	checkcatalog     DBCC CHECKCATALOG
//	suspect_pages    (default) msdb.dbo.suspect_pages rows of the database: event types 1, 2, 3
//	                 (823/824 errors, bad checksums, torn pages) are corruption; 4, 5, 7
//	                 (restored, repaired, deallocated) are history and ignored
//	last_known_good  (default) DATABASEPROPERTYEX(@db, 'LastGoodCheckDbTime'): 1900-01-01 (never
//	                 checked) or older than WithLastGoodMaxAge (7 days) is a warning
//	page_verify      (default) PAGE_VERIFY other than CHECKSUM is a warning
//	backups          (default) latest full backup in msdb.dbo.backupset: none, older than
//	                 WithBackupMaxAge (8 days), or without backup checksums is a warning; a
//	                 backup with is_damaged = 1 since the latest full backup is corruption
//
// Options: [WithPhysicalOnly], [WithDataPurity], [WithExtendedLogicalChecks],
// [WithTabLock] (blocks writers: opt-in), [WithMaxDOP], [WithNoIndex],
// [WithLockTimeout], [WithLastGoodMaxAge], [WithBackupMaxAge], [WithLogger],
// [WithName].
//
// Every TABLERESULTS row becomes a finding, mapped by column name (Error,
// Level, State, MessageText, RepairLevel, ObjectId, IndexId, File, Page,
// Slot ...), so older versions with fewer columns work. Object ids are
// resolved to schema.name (and nonclustered index names) on the same
// connection after DBCC finishes; the location is file, page and slot.
// Errors DBCC raises as error tokens (823, 824, 8921, 8992 ...) are
// classified by the same table. Informational messages are drained as
// they come (go-mssqldb's message queue blocks when it is not read) and
// are never findings.
//
// # Severity table
//
// How each error number is treated, whatever level the message carries
// (see [Classify]):
//
//	corruption  605, 823, 824, 829, 832, 5242, 5243, 5250                  page I/O and in-memory damage
//	            2511, 2512, 2533, 2534, 2537, 2575, 2576, 7965             index keys, page ownership, IAM
//	            7985-7988, 7995, 8930, 8992                                system tables and catalog
//	            8905, 8906, 8909, 8913, 8914, 8998                         allocation (GAM, SGAM, PFS, IAM)
//	            8928, 8929, 8939, 8941-8944, 8961, 8964, 8965, 8970        pages, records, off-row data
//	            8951, 8952, 8955, 8956, 8976-8979                          index/data mismatch, b-tree linkage
//	            2570                                                       data purity: a value out of its type's
//	                                                                       range; DBCC counts it as a consistency
//	                                                                       error and repair cannot fix it (UPDATE
//	                                                                       the row), so it is corruption
//	warning     825                                                        read-retry: a read succeeded only after
//	                                                                       failing; no damage yet, the storage is
//	                                                                       failing (act now)
//	            2508                                                       wrong page/row counts: DBCC UPDATEUSAGE
//	summary     8958, 8989, 8990                                           not findings; corruption only when they
//	                                                                       count errors no row reported (fail safe)
//	ignored     2528, 2536, 2593, 7928                                     informational
//	error       1934, 5030, 7926, 8921, 8967                               DBCC could not run or stopped: the task
//	                                                                       fails (status error, never healthy)
//
// Numbers not in the table fail safe: a TABLERESULTS row of level 16 or
// more is corruption and one below 16 a warning; an error token of level
// 22 to 24 (SQL Server's "table or index damaged", "database integrity in
// question", "media failure") is corruption and one of level 11 to 21
// fails the task (permission denied 229, 262, 297, 300, 916, 2571; lock
// timeout 1222 and deadlock 1205, both retried once by the Runner;
// timeouts; syntax ...).
//
// # Fingerprints
//
// [Target.Fingerprint] proves what the database holds, to compare a copy
// (a restored backup, a migration, a new disk) with the original (see
// [checks.Fingerprint], [checks.Compare], `dbscrub fingerprint` and
// `dbscrub compare`): for every user table, the row count and an
// order-independent hash of every row, computed by the server in
// primary-key chunks sized by time ([checks.WithChunkTime], about half a
// second each). [Target.HashRanges] and [Target.SplitRange] let
// [checks.Narrow] locate a difference down to single rows. It needs SQL
// Server 2016 or later, Azure SQL Database or Managed Instance, and SELECT
// on every table (db_datareader); a table the login cannot read is an
// error, never left out silently ([checks.WithExcludeTables] leaves it
// out).
//
// Each chunk is one statement (bounds are parameters, converted back to the
// key column's type, and collation, in SQL):
//
//	SELECT COUNT_BIG(*) AS row_count,
//	  CONVERT(varchar(40), COALESCE(SUM(CONVERT(decimal(38,0), CONVERT(bigint, SUBSTRING(r.h, 1, 8)))), 0)) AS lane0,
//	  CONVERT(varchar(40), COALESCE(SUM(CONVERT(decimal(38,0), CONVERT(bigint, SUBSTRING(r.h, 9, 8)))), 0)) AS lane1
//	FROM [dbo].[Orders] AS t
//	CROSS APPLY (SELECT HASHBYTES('SHA2_256', (SELECT t.[OrderID] AS [c0], t.[Note] AS [c1], ...
//	  FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)) AS h) AS r
//	WHERE t.[OrderID] > CONVERT(int, @p1) AND t.[OrderID] <= CONVERT(int, @p2);
//
// Each row becomes a JSON object in which NULL is null and an empty string
// "" (so they hash differently), with positional names (a column named
// "a.b" would nest), hashed with SHA-256 over its UTF-16 text (so the
// collation and code page of a varchar column do not matter, only its
// characters). Bytes 1-8 and 9-16 of the hash, read as signed bigints, are
// the two 64-bit lanes of [checks.Digest]; they are summed exactly as
// decimal(38,0), which cannot overflow below 10^19 rows, and reduced
// modulo 2^64 in Go (the same as summing them unsigned). Sums do not
// depend on the order rows are read in. A composite key's bound expands to
// (k1 > @a) OR (k1 = @a AND k2 > @b) behind k1 >= @a; chunk bounds are
// found with ORDER BY key OFFSET n ROWS FETCH NEXT 1 ROWS ONLY.
//
// How values are rendered, and why:
//
//	int, bigint, smallint, tinyint, bit   as FOR JSON writes them (exact)
//	char, varchar, nchar, nvarchar        as FOR JSON writes them: a JSON string, escaped
//	binary, varbinary                     as FOR JSON writes them: base64
//	uniqueidentifier                      as FOR JSON writes it
//	float, real                           CONVERT(varchar(30), c, 3): 17 (9) digits, lossless; FOR JSON's
//	                                      own number format is not documented to be exact
//	decimal, numeric                      CONVERT(varchar(50), c): every digit of the scale
//	money, smallmoney                     CONVERT(varchar(30), c, 2): four decimals (style 0 rounds to two)
//	date, time, datetime, datetime2,      CONVERT(varchar(40), c, 121): every fractional digit of the
//	smalldatetime, datetimeoffset         type and the offset, whatever SET LANGUAGE and DATEFORMAT say
//	text, ntext, image, xml               converted to varchar(max), nvarchar(max), varbinary(max),
//	                                      nvarchar(max) (xml as SQL Server serializes the stored value)
//	sql_variant                           its BaseType, ':', and its value's bytes (varbinary, style 1):
//	                                      1 (int) and '1' (varchar) differ, floats and dates stay exact
//	geography, geometry, hierarchyid,     CONVERT(varbinary(max), c): their serialized bytes (FOR JSON
//	CLR user-defined types                refuses CLR types)
//
// Not hashed, and named in the table's note: computed columns (derived from
// the others; a non-deterministic one would change every time), sparse
// column sets (the sparse columns themselves are hashed) and rowversion
// (timestamp) columns, which the server assigns and which differ in every
// copy that was not restored from a backup. Temporal period columns are
// hashed: a copy made by reloading rows, rather than a restore, has new
// ones. Memory-optimized tables cannot be read inside the fingerprint's
// transaction: exclude them. External tables are left out. A table
// without a primary key, or whose key has a type that cannot bound a chunk
// (sql_variant, a CLR type other than hierarchyid), is one whole-table
// aggregate, flagged keyed:false with a note. Key bounds are written as
// JSON numbers (integer, bit, decimal, money) or as SQL Server's text
// (float style 3, dates style 121, binary 0x..., GUIDs, hierarchyid paths).
// The type names and scales of columns are part of the fingerprint: a copy
// whose column types differ (datetime vs datetime2) does not compare equal.
//
// Consistency: the whole fingerprint runs on one connection in one
// transaction, with the session setup above (lock timeout, deadlock
// priority low). When the database has ALLOW_SNAPSHOT_ISOLATION ON, it is
// a SNAPSHOT transaction: every chunk sees the same committed state, rows
// are not locked and writers never wait (the version store in tempdb keeps
// the row versions it needs until it ends). Otherwise it is a READ
// COMMITTED transaction and [checks.Fingerprint].Snapshot starts with "NOT
// ONE SNAPSHOT" (and a warning is logged): each chunk is read at its own
// moment, with short shared row locks (or row versions under
// READ_COMMITTED_SNAPSHOT), so rows written meanwhile may show as
// differences; run ALTER DATABASE ... SET ALLOW_SNAPSHOT_ISOLATION ON for
// a consistent fingerprint of a database in use. A READ_ONLY database, a
// database snapshot and a readable secondary (where SQL Server maps every
// read to snapshot isolation) are consistent without it, and the Snapshot
// field says which. No table lock is ever taken, nothing is written, and
// the transaction is rolled back at the end. SQL Server cannot share a
// snapshot between sessions, so [checks.WithFingerprintJobs] has no effect.
//
// # Database states, availability groups, Azure
//
// The capability probe ([Target.Probe]) reads the version, edition and
// engine edition (SQL Server, Azure SQL Database, Azure SQL Managed
// Instance), sysadmin and db_owner membership, the database's state and
// its availability-group role. When the database cannot be opened (error
// 926, 945, 976 ...), a Target made by [Open] looks it up from master.
//
//   - SUSPECT, RECOVERY_PENDING, EMERGENCY: corruption. The DBCC checks and
//     last_known_good report it as their one finding; nothing runs in the
//     database. suspect_pages, backups and page_verify still run (from
//     master).
//   - RESTORING, OFFLINE, OFFLINE_SECONDARY, COPYING: the checks that read
//     the database are skipped with the reason; RECOVERING is an error
//     (try again later).
//   - Non-readable secondary (secondary_role_allow_connections NO): every
//     check is skipped with the reason except suspect_pages, which reads
//     this replica's own msdb.
//   - Readable secondary: checkcatalog is skipped (run it on the primary),
//     and so is backups (backup history is kept per replica). DBCC CHECKDB
//     on a secondary checks this replica's copy through an internal
//     snapshot: a clean secondary does not prove the primary clean, and a
//     check there does not update LastGoodCheckDbTime on the primary.
//   - Without VIEW SERVER STATE the role is reported as UNKNOWN (a note in
//     the capabilities); the checks then run and fail with the server's own
//     error if the replica cannot run them.
//   - Azure SQL Database (engine edition 5) has no msdb: suspect_pages and
//     backups are skipped with the reason (Microsoft takes the backups and
//     repairs damaged pages); DBCC CHECKDB runs. Azure Synapse is not
//     supported.
//   - tempdb: backups, last_known_good and checkcatalog are skipped.
//
// # Sessions and safety
//
// Each task runs on its own connection, which first runs
//
//	SET LOCK_TIMEOUT 5000; SET DEADLOCK_PRIORITY LOW;
//	SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL, QUOTED_IDENTIFIER ON;
//	SET NUMERIC_ROUNDABORT OFF;
//
// (the lock timeout is [WithLockTimeout]; the SET options are the ones DBCC
// needs for indexed views and indexes on computed columns). Cancelling the
// context sends a TDS attention and the server stops the statement; a
// cancelled or failed task is an error, never healthy, and its connection
// is closed rather than pooled. dbscrub never runs a REPAIR option, DBCC
// WRITEPAGE, or anything that writes. [Target.Statements] (and each task's
// Statement) shows every statement with its parameters as placeholders, for
// review before granting access (dbscrub check --explain).
//
// # Minimal permissions
//
//	check            needs
//	probe            CONNECT to the database; VIEW SERVER STATE (SQL Server 2022:
//	                 VIEW SERVER PERFORMANCE STATE) to see the availability-group role
//	checkdb          db_owner in the database (or sysadmin)
//	checktable       db_owner (or sysadmin; per table: its owner or db_ddladmin)
//	checkalloc       db_owner (or sysadmin)
//	checkcatalog     db_owner (or sysadmin)
//	suspect_pages    SELECT on msdb.dbo.suspect_pages (a user in msdb)
//	backups          SELECT on msdb.dbo.backupset (a user in msdb)
//	last_known_good  CONNECT to the database
//	page_verify      CONNECT to the database
//	fingerprint      SELECT on every table fingerprinted (db_datareader)
//
// A login for every check, without sysadmin:
//
//	USE [master];
//	CREATE LOGIN [dbscrub] WITH PASSWORD = N'...';
//	GRANT VIEW SERVER STATE TO [dbscrub];
//	USE [Sales];
//	CREATE USER [dbscrub] FOR LOGIN [dbscrub];
//	ALTER ROLE [db_owner] ADD MEMBER [dbscrub];
//	USE [msdb];
//	CREATE USER [dbscrub] FOR LOGIN [dbscrub];
//	GRANT SELECT ON dbo.suspect_pages TO [dbscrub];
//	GRANT SELECT ON dbo.backupset TO [dbscrub];
//
// A permission error fails the task with the grant that fixes it.
//
// # Integration tests
//
// The integration tests run against the server named by
// DBSCRUB_SQLSERVER_DSN and are reported as skipped, in one line naming
// the variable, without it. To run them against a container:
//
//	docker run -d --name dbscrub-mssql -e ACCEPT_EULA=Y -e 'MSSQL_SA_PASSWORD=Dbscrub-Test-1' \
//	  -p 1433:1433 mcr.microsoft.com/mssql/server:2022-latest
//	DBSCRUB_SQLSERVER_DSN='sqlserver://sa:Dbscrub-Test-1@localhost:1433?database=master&encrypt=disable' \
//	  go test ./drivers/sqlserver/ -run Integration -v
//
// They probe the server, check the DSN's database, create a throwaway
// database (dbscrub_test_<random>, dropped afterwards), check it is
// healthy after a clean CHECKDB and a backup WITH CHECKSUM, then damage a
// page of it with DBCC WRITEPAGE and check that checkdb and checktable
// report it (package sqlservertest has the helpers). The fingerprint test
// fills tables with every type whose rendering needs care, fingerprints
// them twice (READ COMMITTED, then SNAPSHOT), changes a row and a NULL to
// an empty string, and checks that the comparison locates both.
//
// # Seeing dbscrub catch corruption
//
// DBCC WRITEPAGE is undocumented and destroys data: use it only on a
// throwaway test database, never on one whose data matters. As sysadmin:
//
//	CREATE DATABASE CorruptMe;
//	GO
//	USE CorruptMe;
//	CREATE TABLE dbo.t (id int PRIMARY KEY, payload char(400) NOT NULL);
//	INSERT INTO dbo.t SELECT TOP (2000) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)), 'x'
//	FROM sys.all_columns AS a CROSS JOIN sys.all_columns AS b;
//	CHECKPOINT;
//	-- a data page of dbo.t (or: DBCC IND (N'CorruptMe', N'dbo.t', 1), PageType 1)
//	SELECT TOP (1) allocated_page_file_id, allocated_page_page_id
//	FROM sys.dm_db_database_page_allocations(DB_ID(), OBJECT_ID(N'dbo.t'), 1, NULL, 'DETAILED')
//	WHERE page_type_desc = 'DATA_PAGE';
//	USE master;
//	ALTER DATABASE CorruptMe SET SINGLE_USER WITH ROLLBACK IMMEDIATE;
//	-- file 1, page 280 from the query above; 4 bytes at offset 4000; 1 = straight to disk
//	DBCC WRITEPAGE (N'CorruptMe', 1, 280, 4000, 4, 0xDEADBEEF, 1);
//	ALTER DATABASE CorruptMe SET MULTI_USER;
//	ALTER DATABASE CorruptMe SET OFFLINE WITH ROLLBACK IMMEDIATE; -- drop the clean copy from memory
//	ALTER DATABASE CorruptMe SET ONLINE;
//
// Then
//
//	dbscrub check --dsn 'sqlserver://sa:...@localhost:1433?database=CorruptMe&encrypt=disable'
//
// reports checkdb as corrupt, with findings such as 8928 and 8939 for
// dbo.t at file 1, page 280, and exits with status 2. Drop the database
// afterwards (DROP DATABASE CorruptMe).
package sqlserver
