package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// CountsByProvider returns how many jobs each provider has in each state, for metrics. Only
// each record's provider and state are decoded.
func (s *Store) CountsByProvider() (map[string]map[State]int, error) {
	out := make(map[string]map[State]int)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := bucketsOf(tx).jobs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var j struct {
				Provider string `json:"provider"`
				State    State  `json:"state"`
			}
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("decode job %d: %w: %w", decodeID(k), errCorrupt, err)
			}
			m := out[j.Provider]
			if m == nil {
				m = make(map[State]int, 5)
				out[j.Provider] = m
			}
			m[j.State]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}
