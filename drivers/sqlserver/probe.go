package sqlserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dbscrub/dbscrub/checks"
)

// Engine editions (SERVERPROPERTY('EngineEdition')).
const (
	EngineEditionStandard          = 2
	EngineEditionEnterprise        = 3
	EngineEditionExpress           = 4
	EngineEditionAzureSQLDatabase  = 5
	EngineEditionAzureSynapse      = 6
	EngineEditionManagedInstance   = 8
	EngineEditionAzureSQLEdge      = 9
	EngineEditionSynapseServerless = 11
)

// Availability-group replica roles (sys.dm_hadr_availability_replica_states.role_desc).
const (
	RolePrimary   = "PRIMARY"
	RoleSecondary = "SECONDARY"
	RoleResolving = "RESOLVING"
	// RoleUnknown: the database is in an availability group but the login
	// cannot see the role (it needs VIEW SERVER STATE).
	RoleUnknown = "UNKNOWN"
)

// Capabilities is what [Target.Probe] learns about the server and the
// database.
type Capabilities struct {
	// ServerName is @@SERVERNAME (SERVERPROPERTY('ServerName')).
	ServerName string `json:"server_name"`
	// ProductVersion is SERVERPROPERTY('ProductVersion'), e.g. "16.0.4135.4".
	ProductVersion string `json:"product_version"`
	// MajorVersion is the first number of ProductVersion: 13 is SQL Server
	// 2016, 14 2017, 15 2019, 16 2022, 17 2025.
	MajorVersion int `json:"major_version"`
	// ProductLevel is RTM, SP1, SP2 ...
	ProductLevel string `json:"product_level"`
	// Edition is SERVERPROPERTY('Edition'), e.g. "Enterprise Edition (64-bit)".
	Edition string `json:"edition"`
	// EngineEdition is SERVERPROPERTY('EngineEdition'): see the
	// EngineEdition constants.
	EngineEdition int `json:"engine_edition"`

	// Database is the database's name.
	Database string `json:"database"`
	// DatabaseID is its database_id.
	DatabaseID int `json:"database_id"`
	// State is sys.databases.state_desc: ONLINE, RESTORING, RECOVERING,
	// RECOVERY_PENDING, SUSPECT, EMERGENCY, OFFLINE, COPYING,
	// OFFLINE_SECONDARY.
	State string `json:"state"`
	// UserAccess is user_access_desc: MULTI_USER, SINGLE_USER,
	// RESTRICTED_USER.
	UserAccess string `json:"user_access"`
	// ReadOnly is is_read_only.
	ReadOnly bool `json:"read_only"`
	// PageVerify is page_verify_option_desc: CHECKSUM, TORN_PAGE_DETECTION
	// or NONE.
	PageVerify string `json:"page_verify"`
	// CompatibilityLevel is compatibility_level (130 = SQL Server 2016).
	CompatibilityLevel int `json:"compatibility_level"`
	// Snapshot reports a database snapshot.
	Snapshot bool `json:"snapshot"`
	// DataBytes is the space used in the data files, when the probe ran
	// in the database (0 otherwise); it is the cost of a CHECKDB task.
	DataBytes int64 `json:"data_bytes"`

	// Sysadmin reports membership in the sysadmin server role.
	Sysadmin bool `json:"sysadmin"`
	// DBOwner reports membership in the db_owner database role.
	DBOwner bool `json:"db_owner"`
	// ViewServerState reports the VIEW SERVER STATE permission.
	ViewServerState bool `json:"view_server_state"`

	// AvailabilityGroup is the name of the database's availability group,
	// "" when it is in none.
	AvailabilityGroup string `json:"availability_group,omitempty"`
	// ReplicaRole is this replica's role for the database: RolePrimary,
	// RoleSecondary, RoleResolving or RoleUnknown; "" outside an
	// availability group.
	ReplicaRole string `json:"replica_role,omitempty"`
	// SecondaryAllowConnections is this replica's
	// secondary_role_allow_connections_desc: NO (a non-readable
	// secondary), READ_ONLY or ALL.
	SecondaryAllowConnections string `json:"secondary_allow_connections,omitempty"`

	// ViaMaster reports that the database could not be opened and was
	// looked up from master; OpenError says why it could not be opened.
	ViaMaster bool   `json:"via_master,omitempty"`
	OpenError string `json:"open_error,omitempty"`
	// Notes are things the probe could not find out, and why.
	Notes []string `json:"notes,omitempty"`
}

// Deployment names the kind of SQL Server: "Azure SQL Database", "Azure
// SQL Managed Instance", "Azure Synapse Analytics", "Azure SQL Edge" or
// "SQL Server".
func (c *Capabilities) Deployment() string {
	switch c.EngineEdition {
	case EngineEditionAzureSQLDatabase:
		return "Azure SQL Database"
	case EngineEditionManagedInstance:
		return "Azure SQL Managed Instance"
	case EngineEditionAzureSynapse, EngineEditionSynapseServerless:
		return "Azure Synapse Analytics"
	case EngineEditionAzureSQLEdge:
		return "Azure SQL Edge"
	}
	return "SQL Server"
}

// AzureSQLDatabase reports Azure SQL Database (engine edition 5), which has
// no msdb.
func (c *Capabilities) AzureSQLDatabase() bool {
	return c.EngineEdition == EngineEditionAzureSQLDatabase
}

// Secondary reports that this replica is an availability-group secondary
// for the database.
func (c *Capabilities) Secondary() bool { return c.ReplicaRole == RoleSecondary }

// ReadableSecondary reports a secondary that accepts read connections.
func (c *Capabilities) ReadableSecondary() bool {
	return c.Secondary() && c.SecondaryAllowConnections != "" && c.SecondaryAllowConnections != "NO"
}

// probeSQL learns the server and the database in one row. @p1 is the
// database name, or NULL for the connection's own database.
const probeSQL = `DECLARE @db sysname = COALESCE(@p1, DB_NAME());
SELECT
  CAST(SERVERPROPERTY('ServerName') AS nvarchar(256)) AS server_name,
  CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version,
  CAST(SERVERPROPERTY('ProductLevel') AS nvarchar(128)) AS product_level,
  CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition,
  CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition,
  d.name AS database_name,
  d.database_id,
  d.state_desc,
  d.user_access_desc,
  d.is_read_only,
  d.page_verify_option_desc,
  d.compatibility_level,
  CASE WHEN d.source_database_id IS NULL THEN 0 ELSE 1 END AS is_snapshot,
  IS_SRVROLEMEMBER('sysadmin') AS is_sysadmin,
  IS_ROLEMEMBER('db_owner') AS is_db_owner,
  HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') AS view_server_state,
  CASE WHEN d.database_id = DB_ID() THEN
    (SELECT SUM(CAST(FILEPROPERTY(f.name, 'SpaceUsed') AS bigint)) * 8192 FROM sys.database_files AS f WHERE f.type = 0)
  END AS data_bytes
FROM sys.databases AS d
WHERE d.name = @db;`

// agSQL learns the database's availability group and this replica's role
// (sys.dm_hadr_availability_replica_states needs VIEW SERVER STATE).
const agSQL = `SELECT ag.name AS ag_name, ars.role_desc, ar.secondary_role_allow_connections_desc
FROM sys.databases AS d
JOIN sys.availability_replicas AS ar ON ar.replica_id = d.replica_id
JOIN sys.availability_groups AS ag ON ag.group_id = ar.group_id
LEFT JOIN sys.dm_hadr_availability_replica_states AS ars ON ars.replica_id = ar.replica_id
WHERE d.name = @p1;`

// agCatalogSQL is agSQL without the DMV, for logins without VIEW SERVER
// STATE: membership, but not the role.
const agCatalogSQL = `SELECT ag.name AS ag_name, CAST(NULL AS nvarchar(60)) AS role_desc, ar.secondary_role_allow_connections_desc
FROM sys.databases AS d
JOIN sys.availability_replicas AS ar ON ar.replica_id = d.replica_id
JOIN sys.availability_groups AS ag ON ag.group_id = ar.group_id
WHERE d.name = @p1;`

// probe connects and probes; when the database cannot be opened and the
// Target can reach master, it looks the database up from there.
func (t *Target) probe(ctx context.Context) (*Capabilities, error) {
	if t.isClosed() {
		return nil, fmt.Errorf("sqlserver: %s: %w", t.Info().Name, ErrClosed)
	}
	caps, err := t.probeOn(ctx, t.db, t.database)
	if err != nil && t.master != nil && t.database != "" && isUnavailable(err) && ctx.Err() == nil {
		m, merr := t.master()
		if merr == nil {
			mcaps, merr := t.probeOn(ctx, m, t.database)
			if merr == nil {
				mcaps.ViaMaster = true
				mcaps.OpenError = oneLine(err.Error())
				caps, err = mcaps, nil
			} else {
				err = fmt.Errorf("%w (looking the database up from master also failed: %v)", err, merr)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	t.noteCaps(caps)
	t.cfg.logger.Debug("dbscrub: probed SQL Server", "server", caps.ServerName, "version", caps.ProductVersion,
		"deployment", caps.Deployment(), "database", caps.Database, "state", caps.State, "replica_role", caps.ReplicaRole)
	return caps, nil
}

// probeOn probes through one connector.
func (t *Target) probeOn(ctx context.Context, conn connector, database string) (*Capabilities, error) {
	sess, err := conn.session(ctx)
	if err != nil {
		return nil, t.connectFailure("sqlserver: probe", err)
	}
	discard := true
	defer func() { sess.close(discard) }()

	if resp, err := t.exec(ctx, sess, t.cfg.sessionSQL()); err != nil || len(serverErrors(resp, err)) > 0 {
		return nil, t.failure("probe", "sqlserver: probe: session setup", serverErrors(resp, err), err, false)
	}
	var name any
	if database != "" {
		name = database
	}
	resp, err := t.exec(ctx, sess, probeSQL, name)
	errs := serverErrors(resp, err)
	rows := firstRows(resp)
	if err != nil || (len(errs) > 0 && len(rows) == 0) {
		return nil, t.failure("probe", "sqlserver: probe", errs, err, false)
	}
	if len(rows) == 0 {
		what := "the login's default database"
		if database != "" {
			what = fmt.Sprintf("database %q", database)
		}
		return nil, t.scrub(fmt.Errorf("sqlserver: probe: %w: %s does not exist or this login cannot see it in sys.databases", ErrDatabaseUnavailable, what))
	}
	r := rows[0]
	c := &Capabilities{
		ServerName:         r.String("server_name"),
		ProductVersion:     r.String("product_version"),
		ProductLevel:       r.String("product_level"),
		Edition:            r.String("edition"),
		EngineEdition:      int(r.IntOr("engine_edition", 0)),
		Database:           r.String("database_name"),
		DatabaseID:         int(r.IntOr("database_id", 0)),
		State:              strings.ToUpper(r.String("state_desc")),
		UserAccess:         r.String("user_access_desc"),
		ReadOnly:           r.Bool("is_read_only"),
		PageVerify:         r.String("page_verify_option_desc"),
		CompatibilityLevel: int(r.IntOr("compatibility_level", 0)),
		Snapshot:           r.Bool("is_snapshot"),
		Sysadmin:           r.Bool("is_sysadmin"),
		DBOwner:            r.Bool("is_db_owner"),
		ViewServerState:    r.Bool("view_server_state"),
		DataBytes:          r.IntOr("data_bytes", 0),
	}
	if major, _, ok := strings.Cut(c.ProductVersion, "."); ok {
		c.MajorVersion, _ = strconv.Atoi(major)
	}
	if c.EngineEdition != EngineEditionAzureSQLDatabase && c.EngineEdition != EngineEditionAzureSynapse &&
		c.EngineEdition != EngineEditionSynapseServerless && c.MajorVersion >= 11 {
		t.probeAG(ctx, sess, c)
	}
	discard = false
	return c, nil
}

// probeAG fills in the availability-group fields. Failures become notes:
// the checks then run, and fail with the server's own error if the replica
// cannot run them.
func (t *Target) probeAG(ctx context.Context, sess session, c *Capabilities) {
	resp, err := t.exec(ctx, sess, agSQL, c.Database)
	errs := serverErrors(resp, err)
	denied := false
	for _, e := range errs {
		denied = denied || permissionErrors[e.Number]
	}
	if denied && err == nil {
		c.Notes = append(c.Notes, "the availability-group role is unknown: the login lacks VIEW SERVER STATE (GRANT VIEW SERVER STATE TO [login])")
		resp, err = t.exec(ctx, sess, agCatalogSQL, c.Database)
		errs = serverErrors(resp, err)
	}
	if err != nil || len(errs) > 0 {
		f := t.failure("probe", "availability-group query", errs, err, false)
		c.Notes = append(c.Notes, "the availability-group role is unknown: "+f.Error())
		return
	}
	rows := firstRows(resp)
	if len(rows) == 0 {
		return
	}
	r := rows[0]
	c.AvailabilityGroup = r.String("ag_name")
	c.ReplicaRole = strings.ToUpper(r.String("role_desc"))
	if c.ReplicaRole == "" {
		c.ReplicaRole = RoleUnknown
	}
	c.SecondaryAllowConnections = strings.ToUpper(r.String("secondary_role_allow_connections_desc"))
}

// verdict is what the probe says about running a check.
type verdict struct {
	// skip: the check does not apply (reported as skipped, with this reason).
	skip string
	// state: the database is in a corruption-level state; the check's only
	// task reports this finding.
	state *checks.Finding
	// err: the check cannot run now (reported as an error).
	err error
}

// readsDatabase reports whether a check reads the database itself (rather
// than msdb).
func readsDatabase(check string) bool {
	switch check {
	case CheckSuspectPages, CheckBackups:
		return false
	}
	return true
}

// isDBCC reports the DBCC checks.
func isDBCC(check string) bool {
	switch check {
	case CheckCheckDB, CheckCheckTable, CheckCheckAlloc, CheckCheckCatalog:
		return true
	}
	return false
}

// verdict decides whether check can run against the probed database.
func (c *Capabilities) verdict(check string) verdict {
	db := c.Database
	switch c.EngineEdition {
	case EngineEditionAzureSynapse, EngineEditionSynapseServerless:
		return verdict{err: fmt.Errorf("sqlserver: %w: %s does not support DBCC integrity checks", ErrUnsupported, c.Deployment())}
	}
	if c.AzureSQLDatabase() && !readsDatabase(check) {
		return verdict{skip: "Azure SQL Database has no msdb: Microsoft runs the backups (with checksums) and repairs damaged pages automatically; check backups in the Azure portal"}
	}

	// Database state.
	switch c.State {
	case "ONLINE":
	case "SUSPECT", "RECOVERY_PENDING", "EMERGENCY":
		if isDBCC(check) || check == CheckLastKnownGood {
			return verdict{state: c.stateFinding()}
		}
	case "RECOVERING":
		if readsDatabase(check) && check != CheckPageVerify {
			return verdict{err: fmt.Errorf("sqlserver: %w: database %s is RECOVERING: run the checks again once recovery has finished", ErrDatabaseUnavailable, db)}
		}
	case "RESTORING", "OFFLINE", "OFFLINE_SECONDARY", "COPYING":
		if readsDatabase(check) && check != CheckPageVerify {
			return verdict{skip: fmt.Sprintf("database %s is %s: it cannot be read", db, c.State)}
		}
	default:
		if readsDatabase(check) {
			return verdict{err: fmt.Errorf("sqlserver: %w: database %s is in state %q", ErrDatabaseUnavailable, db, c.State)}
		}
	}

	// Availability-group role.
	if c.Secondary() {
		if c.SecondaryAllowConnections == "NO" && check != CheckSuspectPages {
			return verdict{skip: fmt.Sprintf("database %s is a non-readable secondary replica of availability group %s on this server (secondary_role_allow_connections = NO): run dbscrub against the primary or a readable secondary", db, c.AvailabilityGroup)}
		}
		switch check {
		case CheckCheckCatalog:
			return verdict{skip: fmt.Sprintf("DBCC CHECKCATALOG is not run on an availability-group secondary (database %s, availability group %s): run it on the primary", db, c.AvailabilityGroup)}
		case CheckBackups:
			return verdict{skip: fmt.Sprintf("backup history is kept per replica and %s is a secondary of availability group %s: check backups on the replica that takes them", db, c.AvailabilityGroup)}
		}
	}
	if c.ReplicaRole == RoleResolving && readsDatabase(check) {
		return verdict{err: fmt.Errorf("sqlserver: %w: the replica of availability group %s is RESOLVING: run the checks again once it is primary or secondary", ErrDatabaseUnavailable, c.AvailabilityGroup)}
	}

	// The database could not be opened but is ONLINE (no user for the
	// login, read-only routing ...): DBCC and the database's own queries
	// cannot run.
	if c.ViaMaster && c.State == "ONLINE" && readsDatabase(check) && check != CheckPageVerify {
		remedy := "give the login a user in the database"
		if strings.Contains(c.OpenError, "978") {
			remedy = "add applicationintent=ReadOnly to the DSN"
		}
		return verdict{err: fmt.Errorf("sqlserver: %w: database %s is ONLINE but this login cannot open it (%s): %s", ErrDatabaseUnavailable, db, c.OpenError, remedy)}
	}

	// Databases some checks do not apply to.
	switch {
	case c.DatabaseID == 2 && (check == CheckBackups || check == CheckLastKnownGood):
		return verdict{skip: "tempdb is recreated at every start: it has no backups and no last known good check"}
	case c.DatabaseID == 2 && check == CheckCheckCatalog:
		return verdict{skip: "DBCC CHECKCATALOG cannot run on tempdb"}
	case c.Snapshot && (check == CheckBackups || check == CheckLastKnownGood):
		return verdict{skip: fmt.Sprintf("%s is a database snapshot: it has no backups of its own", db)}
	}
	return verdict{}
}

// stateFinding is the corruption finding for a SUSPECT, RECOVERY_PENDING or
// EMERGENCY database.
func (c *Capabilities) stateFinding() *checks.Finding {
	f := &checks.Finding{
		Severity: checks.StatusCorrupt,
		Object:   c.Database,
		Code:     c.State,
	}
	switch c.State {
	case "SUSPECT":
		f.Message = fmt.Sprintf("database %s is SUSPECT: recovery failed, SQL Server marked it damaged and will not open it", c.Database)
		f.Remedy = "read the SQL Server error log for the error that made recovery fail (823, 824, 5172 ...); restore the database from the last clean backup (and the log backups after it); EMERGENCY mode and REPAIR_ALLOW_DATA_LOSS are the last resort"
	case "RECOVERY_PENDING":
		f.Message = fmt.Sprintf("database %s is RECOVERY_PENDING: recovery could not start (missing or damaged files, or no memory or disk space)", c.Database)
		f.Remedy = "read the SQL Server error log; make the data and log files available (disk, permissions, space) and set the database ONLINE, or restore it from backup"
	default:
		f.Message = fmt.Sprintf("database %s is in EMERGENCY mode: it is read-only, unlogged and open to sysadmin only, usually after a failed recovery", c.Database)
		f.Remedy = "restore the database from the last clean backup; if there is none, copy out what you can before any REPAIR_ALLOW_DATA_LOSS (dbscrub never repairs)"
	}
	if c.OpenError != "" {
		f.Message += " (" + c.OpenError + ")"
	}
	return f
}
