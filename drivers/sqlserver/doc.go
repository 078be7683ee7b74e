// Package sqlserver is dbscrub's SQL Server driver: it runs SQL Server's own
// integrity checks (DBCC CHECKDB and friends) through go-mssqldb and turns
// every error they report into a finding with the object, index, file, page
// and slot, the error number and a remedy. It also reads what SQL Server
// already knows: damaged pages in msdb.dbo.suspect_pages, the last clean
// DBCC CHECKDB, the PAGE_VERIFY option and the backup history. It does
// what Ola Hallengren's DatabaseIntegrityCheck and dbatools'
// Get-DbaLastGoodCheckDb / Get-DbaSuspectPage do, with findings instead of
// log text.
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
// report it (package sqlservertest has the helpers).
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
