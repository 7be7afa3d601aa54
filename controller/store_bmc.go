package controller

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/imprint-dev/imprint/power"
)

// migrationBMC (schema version 4) keeps each node's BMC: how to reach it
// and its credentials (JSON of power.BMC). The password is stored as the
// BMC needs it (IPMI's RAKP and Redfish's basic authentication need it in
// the clear): protect the database like the BMCs themselves.
const migrationBMC = `CREATE TABLE bmcs (
		mac    TEXT PRIMARY KEY REFERENCES nodes(mac),
		config TEXT NOT NULL
	)`

func (s *sqlStore) SetBMC(ctx context.Context, mac string, b *power.BMC) error {
	if b == nil {
		if _, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM bmcs WHERE mac = ?`), mac); err != nil {
			return fmt.Errorf("store: remove the BMC of %s: %w", mac, err)
		}
		return nil
	}
	cfg, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO bmcs (mac, config) VALUES (?, ?) ON CONFLICT (mac) DO UPDATE SET config = excluded.config`), mac, string(cfg)); err != nil {
		return fmt.Errorf("store: save the BMC of %s (%s): %w", mac, b, err)
	}
	return nil
}

func (s *sqlStore) BMC(ctx context.Context, mac string) (*power.BMC, error) {
	var cfg string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT config FROM bmcs WHERE mac = ?`), mac).Scan(&cfg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read the BMC of %s: %w", mac, err)
	}
	var b power.BMC
	if err := json.Unmarshal([]byte(cfg), &b); err != nil {
		return nil, fmt.Errorf("store: the BMC of %s: %w", mac, err)
	}
	return &b, nil
}
