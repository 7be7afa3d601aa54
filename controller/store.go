package controller

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imprint-dev/imprint/api"
	"github.com/imprint-dev/imprint/power"
)

// Store keeps the controller's state: one row per node (its round, its
// credentials of the round, what its agent reported, its lease) and the
// timeline of events. SQLite (one controller) and PostgreSQL (several
// controllers sharing it) implement it with one schema (see migrations).
type Store interface {
	// Enroll creates the node's row if it does not exist yet.
	Enroll(ctx context.Context, mac string) error
	// Node returns the node's row (ErrUnknownNode when not enrolled).
	Node(ctx context.Context, mac string) (NodeRecord, error)
	// Nodes returns every enrolled node's row, by MAC.
	Nodes(ctx context.Context) ([]NodeRecord, error)
	// Save writes the node's row and appends the events, in one
	// transaction.
	Save(ctx context.Context, rec NodeRecord, events ...Event) error
	// Events returns the timeline, oldest first: of one node, or of every
	// node when mac is empty.
	Events(ctx context.Context, mac string) ([]Event, error)
	// Lease takes or renews the node's lease for owner until expires; it
	// fails (held=false) while another owner's lease has not expired.
	Lease(ctx context.Context, mac, owner string, now, expires time.Time) (held bool, holder string, err error)
	// RenewLeases extends every lease owner holds.
	RenewLeases(ctx context.Context, owner string, expires time.Time) error
	// ReleaseLease gives the node's lease up (mac empty: every lease of
	// owner).
	ReleaseLease(ctx context.Context, mac, owner string) error
	// SetBMC records how to reach the node's BMC (nil: it has none).
	SetBMC(ctx context.Context, mac string, b *power.BMC) error
	// BMC returns the node's BMC (nil when it has none).
	BMC(ctx context.Context, mac string) (*power.BMC, error)
	Close() error
}

// NodeRecord is a node's stored state.
type NodeRecord struct {
	MAC   string
	Round int // 1 for the first provisioning
	// Local: iPXE answers local boot (the node is provisioned). Only an
	// operator's Reprovision clears it.
	Local  bool
	Phases []Phase // reached in the current round
	// Token is the node's secret of the round: its agent's API token and
	// the bearer of its callbacks. PhoneSecret is in its phone-home URL.
	// Both are new for every bootstrap script.
	Token       string
	PhoneSecret string
	// What the node reported: recorded, never trusted as identity.
	NodeID    string
	Remote    string // host the discovery came from
	AgentURL  string
	Pin       string // agent TLS fingerprint, from the authenticated discovery
	Status    *api.Status
	Discovery []byte // the round's discovery (JSON)
	Doc       []byte // last provision.json
	Phone     *PhoneHome
	LastStep  string
	ProvStart time.Time
	// Lease: the controller driving the node, until LeaseExpires.
	LeaseOwner   string
	LeaseExpires time.Time
}

func (r *NodeRecord) has(p Phase) bool {
	for _, x := range r.Phases {
		if x == p {
			return true
		}
	}
	return false
}

func (r *NodeRecord) add(p Phase) {
	if !r.has(p) {
		r.Phases = append(r.Phases, p)
	}
}

// OpenStore opens the database a --db value names: sqlite:PATH (created
// with its directory when missing) or postgres://... (postgresql:// too),
// and brings its schema up to date.
func OpenStore(ctx context.Context, dsn string) (Store, error) {
	var d dialect
	var db *sql.DB
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, errors.New("db: sqlite: needs a path (sqlite:/var/lib/imprint/controller.db)")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("db: sqlite %s: %w", path, err)
		}
		d = sqliteDialect
		db, err = openSQLite(path)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d = postgresDialect
		db, err = openPostgres(dsn)
	default:
		return nil, fmt.Errorf("db %q: want sqlite:PATH or postgres://USER@HOST/DB", redactDSN(dsn))
	}
	if err != nil {
		return nil, fmt.Errorf("db %s: %w", redactDSN(dsn), err)
	}
	s := &sqlStore{db: db, d: d}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("db %s: %w", redactDSN(dsn), err)
	}
	return s, nil
}

// redactDSN hides a password in a postgres URL, for messages.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
				return dsn[:i+3] + rest[:c] + ":xxxxx" + rest[at:]
			}
		}
	}
	return dsn
}

type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

// q rewrites ? placeholders to $n for PostgreSQL.
func (d dialect) q(query string) string {
	if d != postgresDialect {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrations is the schema, one version an entry, applied in order and
// recorded in schema_migrations; never edit an applied one, append. The
// statements are valid in both SQLite and PostgreSQL; {{serial}} is the
// auto-increment key of each.
var migrations = []string{
	// 1: nodes and their timeline.
	`CREATE TABLE nodes (
		mac           TEXT PRIMARY KEY,
		round         INTEGER NOT NULL DEFAULT 1,
		local_boot    INTEGER NOT NULL DEFAULT 0,
		phases        TEXT NOT NULL DEFAULT '[]',
		token         TEXT NOT NULL DEFAULT '',
		phone_secret  TEXT NOT NULL DEFAULT '',
		node_id       TEXT NOT NULL DEFAULT '',
		remote        TEXT NOT NULL DEFAULT '',
		agent_url     TEXT NOT NULL DEFAULT '',
		tls_pin       TEXT NOT NULL DEFAULT '',
		status        TEXT NOT NULL DEFAULT '',
		document      TEXT NOT NULL DEFAULT '',
		phone_home    TEXT NOT NULL DEFAULT '',
		last_step     TEXT NOT NULL DEFAULT '',
		prov_start    BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE events (
		id     {{serial}},
		mac    TEXT NOT NULL REFERENCES nodes(mac),
		round  INTEGER NOT NULL,
		phase  TEXT NOT NULL,
		detail TEXT NOT NULL,
		at     BIGINT NOT NULL
	);
	CREATE INDEX events_mac ON events(mac, id)`,
	// 2: leases (Ironic's reservation): the controller driving a node.
	`ALTER TABLE nodes ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
	ALTER TABLE nodes ADD COLUMN lease_expires BIGINT NOT NULL DEFAULT 0`,
	// 3: the round's discovery, so a restarted controller can post the
	// document it had not posted yet.
	`ALTER TABLE nodes ADD COLUMN discovery TEXT NOT NULL DEFAULT ''`,
	// 4: each node's BMC (store_bmc.go).
	migrationBMC,
}

type sqlStore struct {
	db *sql.DB
	d  dialect
}

func (s *sqlStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if s.d == postgresDialect {
		// Controllers starting together migrate one after the other.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7274596)`); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: schema_migrations: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: the database is at schema version %d, this controller knows %d: upgrade the controller", have, len(migrations))
	}
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.d == postgresDialect {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	for v := have + 1; v <= len(migrations); v++ {
		for _, stmt := range strings.Split(strings.ReplaceAll(migrations[v-1], "{{serial}}", serial), ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: version %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// SchemaVersion is the number of migrations applied.
func SchemaVersion(ctx context.Context, s Store) (int, error) {
	ss, ok := s.(*sqlStore)
	if !ok {
		return 0, errors.New("not an SQL store")
	}
	var v int
	err := ss.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *sqlStore) Close() error { return s.db.Close() }

func (s *sqlStore) Enroll(ctx context.Context, mac string) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO nodes (mac) VALUES (?) ON CONFLICT (mac) DO NOTHING`), mac); err != nil {
		return fmt.Errorf("store: enroll %s: %w", mac, err)
	}
	return nil
}

const nodeColumns = `mac, round, local_boot, phases, token, phone_secret, node_id, remote, agent_url, tls_pin, status, document, phone_home, last_step, prov_start, lease_owner, lease_expires, discovery`

type scanner interface{ Scan(dest ...any) error }

func scanNode(row scanner) (NodeRecord, error) {
	var r NodeRecord
	var local int
	var phases, status, doc, phone, disc string
	var provStart, leaseExp int64
	if err := row.Scan(&r.MAC, &r.Round, &local, &phases, &r.Token, &r.PhoneSecret, &r.NodeID, &r.Remote, &r.AgentURL, &r.Pin,
		&status, &doc, &phone, &r.LastStep, &provStart, &r.LeaseOwner, &leaseExp, &disc); err != nil {
		return r, err
	}
	r.Local = local != 0
	if err := json.Unmarshal([]byte(phases), &r.Phases); err != nil {
		return r, fmt.Errorf("node %s: phases: %w", r.MAC, err)
	}
	if status != "" {
		r.Status = new(api.Status)
		if err := json.Unmarshal([]byte(status), r.Status); err != nil {
			return r, fmt.Errorf("node %s: status: %w", r.MAC, err)
		}
	}
	if phone != "" {
		r.Phone = new(PhoneHome)
		if err := json.Unmarshal([]byte(phone), r.Phone); err != nil {
			return r, fmt.Errorf("node %s: phone_home: %w", r.MAC, err)
		}
	}
	if doc != "" {
		r.Doc = []byte(doc)
	}
	if disc != "" {
		r.Discovery = []byte(disc)
	}
	r.ProvStart = fromNanos(provStart)
	r.LeaseExpires = fromNanos(leaseExp)
	return r, nil
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (s *sqlStore) Node(ctx context.Context, mac string) (NodeRecord, error) {
	r, err := scanNode(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+nodeColumns+` FROM nodes WHERE mac = ?`), mac))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("node %s: %w", mac, ErrUnknownNode)
	}
	if err != nil {
		return r, fmt.Errorf("store: read node %s: %w", mac, err)
	}
	return r, nil
}

func (s *sqlStore) Nodes(ctx context.Context) ([]NodeRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY mac`)
	if err != nil {
		return nil, fmt.Errorf("store: list nodes: %w", err)
	}
	defer rows.Close()
	var out []NodeRecord
	for rows.Next() {
		r, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list nodes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func jsonText(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func (s *sqlStore) Save(ctx context.Context, r NodeRecord, events ...Event) error {
	phases := r.Phases
	if phases == nil {
		phases = []Phase{}
	}
	ph, err := jsonText(phases)
	if err != nil {
		return err
	}
	var status, phone string
	if r.Status != nil {
		if status, err = jsonText(r.Status); err != nil {
			return err
		}
	}
	if r.Phone != nil {
		if phone, err = jsonText(r.Phone); err != nil {
			return err
		}
	}
	local := 0
	if r.Local {
		local = 1
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save node %s: %w", r.MAC, err)
	}
	defer tx.Rollback()
	// The lease columns are the lease calls' own: a save never moves them.
	res, err := tx.ExecContext(ctx, s.d.q(`UPDATE nodes SET round = ?, local_boot = ?, phases = ?, token = ?, phone_secret = ?, node_id = ?, remote = ?,
		agent_url = ?, tls_pin = ?, status = ?, document = ?, phone_home = ?, last_step = ?, prov_start = ?, discovery = ? WHERE mac = ?`),
		r.Round, local, ph, r.Token, r.PhoneSecret, r.NodeID, r.Remote, r.AgentURL, r.Pin, status, string(r.Doc), phone, r.LastStep, toNanos(r.ProvStart), string(r.Discovery), r.MAC)
	if err != nil {
		return fmt.Errorf("store: save node %s: %w", r.MAC, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("store: save node %s: %w", r.MAC, ErrUnknownNode)
	}
	for _, ev := range events {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO events (mac, round, phase, detail, at) VALUES (?, ?, ?, ?, ?)`),
			ev.MAC, ev.Round, string(ev.Phase), ev.Detail, toNanos(ev.Time)); err != nil {
			return fmt.Errorf("store: event of %s: %w", r.MAC, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save node %s: commit: %w", r.MAC, err)
	}
	return nil
}

func (s *sqlStore) Events(ctx context.Context, mac string) ([]Event, error) {
	q, args := `SELECT mac, round, phase, detail, at FROM events ORDER BY id`, []any(nil)
	if mac != "" {
		q, args = s.d.q(`SELECT mac, round, phase, detail, at FROM events WHERE mac = ? ORDER BY id`), []any{mac}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var at int64
		var phase string
		if err := rows.Scan(&ev.MAC, &ev.Round, &phase, &ev.Detail, &at); err != nil {
			return nil, fmt.Errorf("store: events: %w", err)
		}
		ev.Phase, ev.Time = Phase(phase), fromNanos(at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

func (s *sqlStore) Lease(ctx context.Context, mac, owner string, now, expires time.Time) (bool, string, error) {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE nodes SET lease_owner = ?, lease_expires = ?
		WHERE mac = ? AND (lease_owner = ? OR lease_owner = '' OR lease_expires < ?)`),
		owner, expires.UnixNano(), mac, owner, now.UnixNano())
	if err != nil {
		return false, "", fmt.Errorf("store: lease %s: %w", mac, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, owner, nil
	}
	r, err := s.Node(ctx, mac)
	if err != nil {
		return false, "", err
	}
	return false, fmt.Sprintf("%s until %s", r.LeaseOwner, r.LeaseExpires.UTC().Format(time.RFC3339)), nil
}

func (s *sqlStore) RenewLeases(ctx context.Context, owner string, expires time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE nodes SET lease_expires = ? WHERE lease_owner = ?`), expires.UnixNano(), owner); err != nil {
		return fmt.Errorf("store: renew leases of %s: %w", owner, err)
	}
	return nil
}

func (s *sqlStore) ReleaseLease(ctx context.Context, mac, owner string) error {
	q, args := s.d.q(`UPDATE nodes SET lease_owner = '', lease_expires = 0 WHERE lease_owner = ? AND mac = ?`), []any{owner, mac}
	if mac == "" {
		q, args = s.d.q(`UPDATE nodes SET lease_owner = '', lease_expires = 0 WHERE lease_owner = ?`), []any{owner}
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store: release lease %s: %w", mac, err)
	}
	return nil
}
