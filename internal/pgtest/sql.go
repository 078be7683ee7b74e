package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/lib/pq"
)

// Open returns a connection pool for the superuser and database db. The
// caller must close it. Pools do not survive Stop/Restart or the
// corruption injectors; open a new one afterwards.
func (c *Cluster) Open(db string) (*sql.DB, error) {
	pool, err := sql.Open("postgres", c.DSN(db))
	if err != nil {
		return nil, fmt.Errorf("pgtest: open %q: %w", db, err)
	}
	return pool, nil
}

// withDB runs fn on a fresh single-use connection pool, so no connection
// outlives the call (restarts, DROP DATABASE and the injectors stay safe).
func (c *Cluster) withDB(db string, fn func(*sql.DB) error) error {
	pool, err := c.Open(db)
	if err != nil {
		return err
	}
	return errors.Join(fn(pool), pool.Close())
}

// Exec runs query (which may hold several statements when args is empty) as
// the superuser in database db.
func (c *Cluster) Exec(ctx context.Context, db, query string, args ...any) error {
	return c.withDB(db, func(pool *sql.DB) error {
		if _, err := pool.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("pgtest: exec in %q: %w", db, err)
		}
		return nil
	})
}

// QueryInt runs query as the superuser in database db and returns the first
// column of the single result row as an integer. NULL is an error.
func (c *Cluster) QueryInt(ctx context.Context, db, query string, args ...any) (int64, error) {
	var v sql.NullInt64
	if err := c.queryRow(ctx, db, query, args, &v); err != nil {
		return 0, err
	}
	if !v.Valid {
		return 0, fmt.Errorf("pgtest: query in %q returned NULL", db)
	}
	return v.Int64, nil
}

// QueryString runs query as the superuser in database db and returns the
// first column of the single result row as text. NULL is an error.
func (c *Cluster) QueryString(ctx context.Context, db, query string, args ...any) (string, error) {
	var v sql.NullString
	if err := c.queryRow(ctx, db, query, args, &v); err != nil {
		return "", err
	}
	if !v.Valid {
		return "", fmt.Errorf("pgtest: query in %q returned NULL", db)
	}
	return v.String, nil
}

func (c *Cluster) queryRow(ctx context.Context, db, query string, args []any, dest ...any) error {
	return c.withDB(db, func(pool *sql.DB) error {
		if err := pool.QueryRowContext(ctx, query, args...).Scan(dest...); err != nil {
			return fmt.Errorf("pgtest: query in %q: %w", db, err)
		}
		return nil
	})
}

// CreateDatabase creates database name from template1, so it has the
// amcheck extension, and returns its superuser DSN.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	return c.createDatabase(ctx, name, "template1")
}

// CreateDatabaseWithoutAmcheck creates database name from template0, so it
// lacks the amcheck extension, and returns its superuser DSN.
func (c *Cluster) CreateDatabaseWithoutAmcheck(ctx context.Context, name string) (string, error) {
	return c.createDatabase(ctx, name, "template0")
}

func (c *Cluster) createDatabase(ctx context.Context, name, template string) (string, error) {
	q := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", quoteIdent(name), template)
	if err := c.Exec(ctx, "postgres", q); err != nil {
		return "", fmt.Errorf("pgtest: create database %q: %w", name, err)
	}
	return c.DSN(name), nil
}

// CreateUser creates a login role with the given password (stored as
// scram-sha-256). Such roles must authenticate with their password over TCP;
// see UserDSN.
func (c *Cluster) CreateUser(ctx context.Context, name, password string) error {
	q := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", quoteIdent(name), pq.QuoteLiteral(password))
	if err := c.Exec(ctx, "postgres", q); err != nil {
		return fmt.Errorf("pgtest: create user %q: %w", name, err)
	}
	return nil
}

// RelationPath returns the absolute path of the first segment of the main
// fork of relation (any name accepted by ::regclass, e.g. "public.t") in
// database db, as reported by pg_relation_filepath.
func (c *Cluster) RelationPath(ctx context.Context, db, relation string) (string, error) {
	var p sql.NullString
	if err := c.queryRow(ctx, db, "SELECT pg_relation_filepath($1::regclass)", []any{relation}, &p); err != nil {
		return "", fmt.Errorf("pgtest: file path of %q: %w", relation, err)
	}
	if !p.Valid {
		return "", fmt.Errorf("pgtest: relation %q in %q has no storage", relation, db)
	}
	if filepath.IsAbs(p.String) {
		return p.String, nil
	}
	return filepath.Join(c.DataDir, p.String), nil
}

// Checkpoint runs CHECKPOINT (connected to database db), flushing all dirty
// buffers to the data files.
func (c *Cluster) Checkpoint(ctx context.Context, db string) error {
	if err := c.Exec(ctx, db, "CHECKPOINT"); err != nil {
		return fmt.Errorf("pgtest: checkpoint: %w", err)
	}
	return nil
}
