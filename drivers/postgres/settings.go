package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/lib/pq"

	"github.com/dbscrub/dbscrub/checks"
)

// settingsCheck is the "settings" check.
type settingsCheck struct{ r *run }

func (c *settingsCheck) Name() string { return CheckSettings }

// riskySetting is a setting whose value puts data at risk.
type riskySetting struct {
	name, risky, why, remedy string
}

var riskySettings = []riskySetting{
	{
		name: "zero_damaged_pages", risky: "on",
		why:    "zero_damaged_pages is on: when PostgreSQL reads a damaged page it replaces it with zeros in memory and carries on, silently losing every row on that page and hiding the damage from checks (a later write makes the loss permanent)",
		remedy: "turn it off (ALTER SYSTEM RESET zero_damaged_pages; SELECT pg_reload_conf(); and remove it from ALTER ROLE/ALTER DATABASE settings); it is only for salvaging data from a copy of a damaged cluster",
	},
	{
		name: "ignore_checksum_failure", risky: "on",
		why:    "ignore_checksum_failure is on: pages that fail their checksum are read as if they were good, so damaged data reaches queries (and may be written back) with only a warning in the log",
		remedy: "turn it off (ALTER SYSTEM RESET ignore_checksum_failure; SELECT pg_reload_conf(); and remove it from ALTER ROLE/ALTER DATABASE settings)",
	},
	{
		name: "fsync", risky: "off",
		why:    "fsync is off: the server does not force writes to disk, so a power loss or an operating system crash can leave the cluster unrecoverably corrupt",
		remedy: "set fsync = on in postgresql.conf (ALTER SYSTEM SET fsync = on; SELECT pg_reload_conf();); after running with fsync off through an OS crash, restore from a backup",
	},
	{
		name: "full_page_writes", risky: "off",
		why:    "full_page_writes is off: a crash in the middle of a page write (a torn page) cannot be repaired from the WAL, leaving a half-written, corrupt page",
		remedy: "set full_page_writes = on (ALTER SYSTEM SET full_page_writes = on; SELECT pg_reload_conf();) unless the file system guarantees atomic 8 kB writes (e.g. ZFS)",
	},
}

// settingsQuery reads reset_val, the value sessions get by default: dbscrub
// turns zero_damaged_pages and ignore_checksum_failure off locally in its
// own transactions, which changes setting but not reset_val.
const settingsQuery = `SELECT s.name, COALESCE(s.reset_val, s.setting) FROM pg_catalog.pg_settings s WHERE s.name = ANY($1::text[])`

// Role and database defaults (ALTER ROLE / ALTER DATABASE ... SET) that
// turn a risky setting on for some sessions.
const roleSettingsQuery = `SELECT COALESCE(r.rolname, ''), COALESCE(d.datname, ''), cfg
FROM pg_catalog.pg_db_role_setting s
LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase,
LATERAL unnest(s.setconfig) AS cfg`

// Plan plans one task that reads the settings.
func (c *settingsCheck) Plan(ctx context.Context) ([]checks.Task, error) {
	if _, err := c.r.capabilities(ctx); err != nil {
		return nil, err
	}
	names := make([]string, len(riskySettings))
	for i, s := range riskySettings {
		names[i] = s.name
	}
	return []checks.Task{{
		Key: "settings", Object: "server settings", Statement: settingsQuery + "; " + roleSettingsQuery,
		Run: func(ctx context.Context) (checks.Result, error) {
			return c.r.runTask(ctx, sessionOpts{}, "server settings", func(s *session, f *findings) (checks.Result, error) {
				return c.read(ctx, s, f, names)
			})
		},
	}}, nil
}

func (c *settingsCheck) read(ctx context.Context, s *session, f *findings, names []string) (checks.Result, error) {
	t := c.r.t
	rows, err := s.tx.QueryContext(ctx, settingsQuery, pq.Array(names))
	if err != nil {
		return checks.Result{}, wrapRead(t, err, "reading pg_settings")
	}
	values := map[string]string{}
	for rows.Next() {
		var name, val string
		if err := rows.Scan(&name, &val); err != nil {
			rows.Close()
			return checks.Result{}, err
		}
		values[name] = val
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return checks.Result{}, wrapRead(t, err, "reading pg_settings")
	}
	rows.Close()
	var missing []string
	for _, rs := range riskySettings {
		v, ok := values[rs.name]
		if !ok {
			missing = append(missing, rs.name)
			continue
		}
		if v == rs.risky {
			f.add(checks.Finding{
				Severity: checks.StatusWarning,
				Object:   rs.name,
				Code:     "setting",
				Message:  rs.why,
				Remedy:   rs.remedy,
			})
		}
	}
	// Defaults set per role or database reach only some sessions.
	rows, err = s.tx.QueryContext(ctx, roleSettingsQuery)
	if err != nil {
		return checks.Result{}, wrapRead(t, err, "reading pg_db_role_setting")
	}
	defer rows.Close()
	type where struct{ role, db string }
	found := map[string][]where{}
	for rows.Next() {
		var role, db string
		var cfg sql.NullString
		if err := rows.Scan(&role, &db, &cfg); err != nil {
			return checks.Result{}, err
		}
		name, val, ok := strings.Cut(cfg.String, "=")
		if !ok {
			continue
		}
		for _, rs := range riskySettings {
			if strings.EqualFold(name, rs.name) && isRiskyValue(val, rs.risky) {
				found[rs.name] = append(found[rs.name], where{role, db})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return checks.Result{}, wrapRead(t, err, "reading pg_db_role_setting")
	}
	for _, rs := range riskySettings {
		ws := found[rs.name]
		if len(ws) == 0 {
			continue
		}
		var parts []string
		for _, w := range ws {
			switch {
			case w.role != "" && w.db != "":
				parts = append(parts, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s", quoteIdent(w.role), quoteIdent(w.db)))
			case w.role != "":
				parts = append(parts, "ALTER ROLE "+quoteIdent(w.role))
			default:
				parts = append(parts, "ALTER DATABASE "+quoteIdent(w.db))
			}
		}
		sort.Strings(parts)
		resets := make([]string, len(parts))
		for i, p := range parts {
			resets[i] = p + " RESET " + rs.name + ";"
		}
		f.add(checks.Finding{
			Severity: checks.StatusWarning,
			Object:   rs.name,
			Code:     "role_setting",
			Message:  rs.why + " (for some sessions: set by " + strings.Join(parts, ", ") + ")",
			Remedy:   "as a superuser run: " + strings.Join(resets, " "),
		})
	}
	if len(missing) > 0 {
		return checks.Result{}, fmt.Errorf("postgres: settings: cannot read %s from pg_settings (the role may lack pg_read_all_settings)", strings.Join(missing, ", "))
	}
	return checks.Result{Objects: int64(len(riskySettings))}, nil
}

// isRiskyValue reports whether a boolean setting value means the risky one.
func isRiskyValue(val, risky string) bool {
	v := strings.ToLower(strings.Trim(strings.TrimSpace(val), `'"`))
	on := v == "on" || v == "true" || v == "yes" || v == "1" || v == "t" || v == "y"
	off := v == "off" || v == "false" || v == "no" || v == "0" || v == "f" || v == "n"
	if risky == "on" {
		return on
	}
	return off
}

func wrapRead(t *Target, err error, what string) error {
	if isConnLost(err) {
		return err
	}
	return t.scrub(fmt.Errorf("postgres: settings: %s: %s", what, oneLine(err.Error())))
}
