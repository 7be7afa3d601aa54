package controller

import (
	"database/sql"
	"net/url"

	_ "modernc.org/sqlite" // database/sql driver "sqlite": pure Go, the binary stays static
)

// openSQLite opens (creating) the database file: WAL with full sync, so a
// killed controller loses no committed state; foreign keys on; one
// connection, since SQLite has one writer anyway.
func openSQLite(path string) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
