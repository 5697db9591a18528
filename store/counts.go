package store

import (
	"bytes"
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
			var ok bool
			if j.Provider, ok = firstString(v, `"provider":"`); ok {
				var st string
				st, ok = firstString(v, `"state":"`)
				j.State = State(st)
			}
			if !ok {
				if err := json.Unmarshal(v, &j); err != nil {
					return fmt.Errorf("decode job %d: %w: %w", decodeID(k), errCorrupt, err)
				}
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

// firstString returns the value of the first `"key":"` in a record, when it has no escapes:
// a fast path for CountsByProvider, which runs at every scrape. Job records are written with
// provider and state before any nested object (a result's extras could hold a "provider"
// key), and a key cannot occur inside a string value, where its quotes would be escaped.
func firstString(rec []byte, key string) (string, bool) {
	i := bytes.Index(rec, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := rec[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
}
