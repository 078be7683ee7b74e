package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dbscrub/dbscrub/checks"
	"github.com/dbscrub/dbscrub/drivers/sqlite"
)

// makeLibrary creates a small database: two tables, a foreign key between
// them and an index. It returns the file's path.
func makeLibrary(dir string) string {
	path := filepath.Join(dir, "library.db")
	db, err := sql.Open("sqlite", path) // registered by drivers/sqlite
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`
		CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
		CREATE TABLE books (
			id        INTEGER PRIMARY KEY,
			author_id INTEGER NOT NULL REFERENCES authors(id),
			title     TEXT NOT NULL
		);
		CREATE INDEX books_author ON books(author_id);
		INSERT INTO authors VALUES (1, 'Ursula K. Le Guin'), (2, 'Italo Calvino');
		INSERT INTO books VALUES (1, 1, 'The Dispossessed'), (2, 2, 'Invisible Cities');`)
	if err != nil {
		log.Fatal(err)
	}
	return path
}

// Open a database file read-only and gate on its integrity, as before a
// migration or a disk move.
func Example() {
	dir, err := os.MkdirTemp("", "dbscrub-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := makeLibrary(dir)

	t, err := sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()

	rep, err := checks.Gate(context.Background(), t)
	for _, c := range rep.Checks {
		fmt.Printf("%s: %s, objects verified: %d\n", c.Check, c.Status, c.Coverage.ObjectsVerified)
	}
	fmt.Println("status:", rep.Status)
	fmt.Println("safe to go on:", err == nil)
	// Output:
	// integrity: healthy, objects verified: 3
	// foreign_keys: healthy, objects verified: 1
	// status: healthy
	// safe to go on: true
}

// A row that references a missing parent (written by a connection that
// did not turn foreign_keys on) is corruption: Gate's error wraps
// checks.ErrCorrupt and the finding names the table and the row.
func ExampleTarget_Checks() {
	dir, err := os.MkdirTemp("", "dbscrub-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := makeLibrary(dir)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO books VALUES (3, 99, 'By nobody')"); err != nil {
		log.Fatal(err)
	}
	db.Close()

	t, err := sqlite.Open("sqlite://"+path, sqlite.WithQuickCheck())
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	cks, err := t.Checks(sqlite.CheckForeignKeys)
	if err != nil {
		log.Fatal(err)
	}
	rep, err := checks.Gate(context.Background(), t, checks.WithChecks(cks...))
	for _, f := range rep.Findings() {
		fmt.Printf("%s %s: %s\n", f.Severity, f.Object, f.Message)
	}
	fmt.Println("corrupt:", errors.Is(err, checks.ErrCorrupt))

	_, err = t.Checks("heap")
	fmt.Println(err)
	// Output:
	// corrupt books: row rowid 3 of books references a missing row in authors (foreign key #0)
	// corrupt: true
	// sqlite: unknown check "heap" (valid: integrity, foreign_keys)
}

// A missing file is an error, never a new, empty, healthy database.
func ExampleOpen_missingFile() {
	dir, err := os.MkdirTemp("", "dbscrub-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	t, err := sqlite.Open(filepath.Join(dir, "tpyo.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	rep, err := checks.Gate(context.Background(), t)
	fmt.Println("status:", rep.Status)
	fmt.Println("not verified:", errors.Is(err, checks.ErrNotVerified))
	_, statErr := os.Stat(filepath.Join(dir, "tpyo.db"))
	fmt.Println("file created:", !errors.Is(statErr, os.ErrNotExist))
	// Output:
	// status: error
	// not verified: true
	// file created: false
}
