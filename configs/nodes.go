package configs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxDepth bounds how deep the loader follows nested nodes and merge keys, so that a
// self-referencing alias cannot make it loop.
const maxDepth = 64

// maxCopies bounds how many nodes the loader copies while expanding values, so that a
// document built of aliases of aliases cannot blow up memory.
const maxCopies = 1 << 16

// pair is one key and its value in a YAML mapping.
type pair struct {
	name string
	key  *yaml.Node
	val  *yaml.Node
}

// deref follows aliases to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or a YAML null (`key:` with no value, `~`, `null`).
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// join appends a key to a key path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a list index to a key path.
func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// find returns the pair named name, or nil.
func find(pairs []pair, name string) *pair {
	for i := range pairs {
		if pairs[i].name == name {
			return &pairs[i]
		}
	}
	return nil
}

// keyLine returns the line of the key named name when it is given, else def.
func keyLine(pairs []pair, name string, def int) int {
	if p := find(pairs, name); p != nil {
		return p.key.Line
	}
	return def
}

// pairs returns the keys and values of mapping n in file order, reporting keys that are
// not plain values and duplicate keys (the first one wins). Merge keys (`<<: *anchor`)
// are resolved: merged keys come after the mapping's own and never override them.
func (l *loader) pairs(n *yaml.Node, path string) []pair {
	return l.pairsDepth(n, path, 0)
}

func (l *loader) pairsDepth(n *yaml.Node, path string, depth int) []pair {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	if depth > maxDepth {
		l.add(path, n.Line, "merge keys nested too deeply")
		return nil
	}
	var own, merged []pair
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, l.mergePairs(v, path, depth+1)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.add(path, k.Line, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			l.add(join(path, k.Value), k.Line, "duplicate key (first given on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, pair{name: k.Value, key: k, val: v})
	}
	for _, p := range merged {
		if _, dup := seen[p.name]; !dup {
			seen[p.name] = p.key.Line
			own = append(own, p)
		}
	}
	return own
}

// mergePairs returns the pairs a merge key's value brings in: a mapping, or a list of
// mappings of which the earlier ones win.
func (l *loader) mergePairs(v *yaml.Node, path string, depth int) []pair {
	v = deref(v)
	switch {
	case v == nil:
		return nil
	case v.Kind == yaml.MappingNode:
		return l.pairsDepth(v, path, depth)
	case v.Kind == yaml.SequenceNode:
		var out []pair
		seen := make(map[string]bool)
		for _, item := range v.Content {
			item = deref(item)
			if item == nil || item.Kind != yaml.MappingNode {
				l.add(path, v.Line, "<< must merge a mapping or a list of mappings")
				continue
			}
			for _, p := range l.pairsDepth(item, path, depth) {
				if !seen[p.name] {
					seen[p.name] = true
					out = append(out, p)
				}
			}
		}
		return out
	default:
		l.add(path, v.Line, "<< must merge a mapping or a list of mappings")
		return nil
	}
}

// unknown reports every pair whose name is not in known, suggesting the closest known key.
func (l *loader) unknown(pairs []pair, path string, known []string) {
	for _, p := range pairs {
		if !contains(known, p.name) {
			l.unknownKey(p, path, known)
		}
	}
}

// unknownKey reports p as an unknown key.
func (l *loader) unknownKey(p pair, path string, known []string) {
	msg := fmt.Sprintf("unknown key %q", p.name)
	if s := suggest(p.name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	l.add(join(path, p.name), p.key.Line, "%s", msg)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// expandString replaces every ${VAR} in s by the variable's value and every $$ by $. A $
// followed by anything else is kept as it is. Problems are reported against key and line,
// never quoting s (it may be a secret).
func (l *loader) expandString(s, key string, line int) (string, bool) {
	if !strings.Contains(s, "$") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				l.add(key, line, "unterminated ${ (write $$ for a literal $)")
				return "", false
			}
			name := s[i+2 : i+2+end]
			i += 2 + end
			if !validVarName(name) {
				l.add(key, line, "bad variable reference ${...}: a name is letters, digits and _ (write $$ for a literal $)")
				ok = false
				continue
			}
			val, set := l.getenv(name)
			if !set {
				l.add(key, line, "environment variable %s is not set", name)
				ok = false
				continue
			}
			b.WriteString(val)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ok
}

func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expandNode returns a deep copy of n with aliases resolved and ${VAR} expanded in every
// scalar. A plain (unquoted) scalar that changed loses its tag, so that it is resolved
// again: `concurrency: ${N}` with N=4 is the number 4.
func (l *loader) expandNode(n *yaml.Node, key string) (*yaml.Node, bool) {
	return l.expandDepth(n, key, 0)
}

func (l *loader) expandDepth(n *yaml.Node, key string, depth int) (*yaml.Node, bool) {
	n = deref(n)
	if n == nil {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, true
	}
	l.copies++
	if depth > maxDepth || l.copies > maxCopies {
		l.add(key, n.Line, "value nested too deeply or aliased too often")
		return nil, false
	}
	c := *n
	ok := true
	switch n.Kind {
	case yaml.ScalarNode:
		v, vok := l.expandString(n.Value, key, n.Line)
		ok = vok
		if v != n.Value {
			c.Value = v
			if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 && n.ShortTag() == "!!str" {
				c.Tag = ""
			}
		}
	case yaml.MappingNode:
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		for _, p := range l.pairsDepth(n, key, depth) {
			v, vok := l.expandDepth(p.val, join(key, p.name), depth+1)
			if !vok {
				ok = false
				continue
			}
			k := *p.key
			c.Content = append(c.Content, &k, v)
		}
	case yaml.SequenceNode:
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		for i, item := range n.Content {
			v, vok := l.expandDepth(item, index(key, i), depth+1)
			if !vok {
				ok = false
				continue
			}
			c.Content = append(c.Content, v)
		}
	}
	return &c, ok
}

// scalar returns the expanded string value of n; "" for null. A mapping or list is a
// problem.
func (l *loader) scalar(n *yaml.Node, key string) (string, bool) {
	n = deref(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		l.add(key, n.Line, "must be a single value, not %s", kindName(n))
		return "", false
	}
	return l.expandString(n.Value, key, n.Line)
}

// text returns the trimmed text of a scalar value; given is false for a null or blank
// value (the caller's default applies), ok is false when n is not a scalar (a problem was
// recorded).
func (l *loader) text(n *yaml.Node, key string) (s string, given, ok bool) {
	if isNull(n) {
		return "", false, true
	}
	s, ok = l.scalar(n, key)
	if !ok {
		return "", false, false
	}
	s = strings.TrimSpace(s)
	return s, s != "", true
}

// intValue returns the integer value of n, or def when n is null.
func (l *loader) intValue(n *yaml.Node, key string, def int) (int, bool) {
	s, given, ok := l.text(n, key)
	if !given || !ok {
		return def, ok
	}
	v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil {
		l.add(key, deref(n).Line, "must be a whole number, got %q", s)
		return def, false
	}
	return v, true
}

// boolValue returns the boolean value of n, or def when n is null.
func (l *loader) boolValue(n *yaml.Node, key string, def bool) (bool, bool) {
	s, given, ok := l.text(n, key)
	if !given || !ok {
		return def, ok
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	l.add(key, deref(n).Line, "must be true or false, got %q", s)
	return def, false
}

// durationValue returns the duration value of n, or def when n is null.
func (l *loader) durationValue(n *yaml.Node, key string, def time.Duration) (time.Duration, bool) {
	s, given, ok := l.text(n, key)
	if !given || !ok {
		return def, ok
	}
	d, msg := parseDuration(s)
	if msg != "" {
		l.add(key, deref(n).Line, "%s", msg)
		return def, false
	}
	return d, true
}

// parseDuration parses a Go duration ("3s", "500ms", "1h30m"); a bare number is refused,
// since its unit would be a guess. It returns a message for the user on failure.
func parseDuration(s string) (time.Duration, string) {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Sprintf("bad duration %q: use a unit, e.g. %ss", s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Sprintf("bad duration %q: use e.g. 500ms, 3s, 2m or 1h", s)
	}
	return d, ""
}

// listItem is one string of a list, with its line.
type listItem struct {
	s    string
	line int
}

// stringList returns the expanded strings of a list; a single value counts as a list of
// one; null is an empty list.
func (l *loader) stringList(n *yaml.Node, key string) ([]listItem, bool) {
	n = deref(n)
	if isNull(n) {
		return nil, true
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := l.scalar(n, key)
		if !ok {
			return nil, false
		}
		return []listItem{{s, n.Line}}, true
	case yaml.SequenceNode:
		var out []listItem
		ok := true
		for i, item := range n.Content {
			s, iok := l.scalar(item, index(key, i))
			if !iok {
				ok = false
				continue
			}
			out = append(out, listItem{s, deref(item).Line})
		}
		return out, ok
	default:
		l.add(key, n.Line, "must be a list of values, not %s", kindName(n))
		return nil, false
	}
}
