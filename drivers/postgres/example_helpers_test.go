package postgres_test

import "database/sql"

func mustOpenPool() *sql.DB {
	db, err := sql.Open("postgres", "postgres://app@db.example.com/app")
	if err != nil {
		panic(err)
	}
	return db
}

func loadCounter() int64  { return 0 }
func saveCounter(n int64) {}
