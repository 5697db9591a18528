package configs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/chute-dev/chute/uploader"
)

// Problem is one thing wrong with a config.
type Problem struct {
	// Key is the path of the key the problem is about, e.g. "providers.gc.api_key" or
	// "folders[1].settle" (folders are counted from 0); "" for the file as a whole.
	Key string
	// Line is the 1-based line in the file; 0 when the problem has no line (e.g. a
	// missing top-level key).
	Line int
	// Msg says what is wrong, in words a user can act on. It never holds a secret.
	Msg string
}

// String formats p as "line 12: providers.gc.api_key: required"; "line N: " is left out
// when Line is 0 and "key: " when Key is "".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is the error Load and Parse return when the config is invalid: every problem
// found, sorted by line.
type Problems []Problem

// Error returns the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted returns ps sorted by line (stable, so problems on one line keep the order they
// were found in), without exact duplicates.
func (ps Problems) sorted() Problems {
	out := make(Problems, 0, len(ps))
	seen := make(map[Problem]bool, len(ps))
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// FieldError is one problem an options struct's Validate found (uploader.FieldError: the
// providers' own type, so that they need not import configs).
type FieldError = uploader.FieldError

// Validator is implemented by options structs that check more than required fields.
type Validator = uploader.Validator
