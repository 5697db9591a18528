// Package configs loads chute's YAML config: it expands ${VAR} references, reads *_file
// secrets, fills in defaults, decodes each provider's options into the struct its type
// declares, and validates the lot, reporting every problem at once with its key path and
// line.
//
// Key paths in problems look like "log.level", "providers.gc.api_key" and
// "folders[1].settle"; folders are counted from 0 in file order.
//
// Beyond the keys themselves the loader accepts YAML anchors, aliases and merge keys
// (`<<: *defaults`), a single string where a list of patterns is expected, and the
// numbers in concurrency and max_attempts given through ${VAR}.
package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults for keys that are not given.
const (
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "text"
	DefaultConcurrency = 2
	// DefaultSmallConcurrency is how many files under SmallFile a provider uploads at once
	// when its `concurrency` is not given; a given `concurrency` bounds files of every size.
	DefaultSmallConcurrency = 32
	// SmallFile is the size under which a file counts as small for SmallConcurrency.
	SmallFile          = 1 << 20
	DefaultMaxAttempts = 10
	DefaultSettle      = 3 * time.Second
	DefaultMaxWait     = time.Hour
	DefaultAfter       = "keep"
	// MaxConcurrency is the largest concurrency a provider may have.
	MaxConcurrency = 64
)

// Values of Folder.After.
const (
	AfterKeep   = "keep"
	AfterDelete = "delete"
	AfterMove   = "move"
)

// The keys and values the loader knows. They are functions, not variables, so that no
// caller can change them.
func topKeys() []string {
	return []string{"state", "log", "listen", "listen_token", "listen_token_file", "providers", "folders"}
}
func logKeys() []string { return []string{"level", "format"} }
func providerKeys() []string {
	return []string{"type", "endpoint", "concurrency", "max_attempts"}
}
func folderKeys() []string {
	return []string{"path", "provider", "recursive", "include", "exclude", "settle", "max_wait", "after", "move_to"}
}
func logLevels() []string   { return []string{"debug", "info", "warn", "error"} }
func logFormats() []string  { return []string{"text", "json"} }
func afterValues() []string { return []string{AfterKeep, AfterDelete, AfterMove} }

// TypeInfo describes a provider type to the loader (the caller builds it from its registry).
type TypeInfo struct {
	// NewOptions returns a pointer to a fresh options struct with its defaults set. The
	// loader fills it from the provider's keys by the fields' `yaml` tags; a field tagged
	// `chute:"required"` must be set, one tagged `chute:"secret"` is a credential that may
	// also be read from a file with the key `<name>_file`. Nil: the type takes no options.
	NewOptions func() any
	// EndpointRequired is true when the type has no default endpoint (tus).
	EndpointRequired bool
}

// TypeLookup returns the TypeInfo of a provider type by its name (`type:` in the config),
// and false when there is no such type.
type TypeLookup func(typeName string) (TypeInfo, bool)

// Options tunes Load and Parse.
type Options struct {
	// Types looks provider types up; nil knows no type at all.
	Types TypeLookup
	// Getenv looks up the variables of ${VAR} references; nil: os.LookupEnv.
	Getenv func(string) (string, bool)
	// SkipFilesystem skips the checks that folders exist and are readable (for checking
	// configs written for another machine, such as the examples).
	SkipFilesystem bool
}

// Config is a loaded, valid config with every default filled in.
type Config struct {
	// Source is the absolute path of the config file ("" when parsed without one).
	Source string
	// State is the absolute path of the bbolt state database; default DefaultStatePath().
	State string
	Log   Log
	// Listen is the host:port of the HTTP status endpoint; "" when it is off.
	Listen string
	// ListenToken is the bearer token the listener asks for, on everything but /healthz and
	// /metrics (`listen_token` or `listen_token_file`); required when Listen is not a
	// loopback address. A secret.
	ListenToken string
	// Providers are the configured providers by name.
	Providers map[string]*Provider
	// Folders are the watched folders, in file order.
	Folders []*Folder
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error; default info.
	Level string
	// Format is text or json; default text.
	Format string
}

// Provider is one configured provider (`providers.<name>`).
type Provider struct {
	// Name is the provider's key under `providers`.
	Name string
	// Type is the provider type (`type`).
	Type string
	// Endpoint is the base URL of the provider's API; "" means the type's default.
	Endpoint string
	// Concurrency is how many uploads run at once (`concurrency`), 1..64, default 2.
	Concurrency int
	// SmallConcurrency is how many files under SmallFile may upload at once, within which
	// at most Concurrency files of SmallFile or more: DefaultSmallConcurrency when
	// `concurrency` is not given, Concurrency when it is (a number below Concurrency counts
	// as Concurrency).
	SmallConcurrency int
	// MaxAttempts is how many attempts a job gets before it fails for good
	// (`max_attempts`), at least 1, default 10.
	MaxAttempts int
	// Options is the filled options struct from TypeInfo.NewOptions (nil when the type
	// has no NewOptions).
	Options any
	// Line is the line of the provider's name in the file.
	Line int
}

// Folder is one watched folder (an item of `folders`).
type Folder struct {
	// Path is the folder, absolute and cleaned.
	Path string
	// Provider names the provider its files go to.
	Provider string
	// Recursive watches subfolders too; default true.
	Recursive bool
	// Include lists glob patterns (filepath.Match) of files to upload; none: every file.
	Include []string
	// Exclude lists glob patterns of files never to upload.
	Exclude []string
	// Settle is how long a file's size and mtime must stay unchanged before it is
	// uploaded; default 3s, always > 0.
	Settle time.Duration
	// MaxWait is how long a file may keep changing before a warning is logged (`max_wait`);
	// default 1h, never shorter than Settle.
	MaxWait time.Duration
	// After is what happens to an uploaded file: keep, delete or move; default keep.
	After string
	// MoveTo is where files go with after: move (`move_to`); absolute and cleaned, never
	// inside a watched folder. The folder is not required to exist yet.
	MoveTo string
	// Line is the line of the folder's item in the file.
	Line int
}

// Load reads the config file at path and parses it with Parse. A file that cannot be read
// is a plain error; an invalid config is a Problems.
func Load(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path, opts)
}

// Parse parses a config. source is the path of the file it came from: relative paths in
// the config resolve against its directory (the working directory when source is "").
// An invalid config returns a nil Config and a Problems holding every problem found.
func Parse(data []byte, source string, opts Options) (*Config, error) {
	l := &loader{opts: opts, getenv: opts.Getenv}
	if l.getenv == nil {
		l.getenv = os.LookupEnv
	}
	cfg := &Config{}
	if source != "" {
		abs, err := filepath.Abs(source)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", source, err)
		}
		cfg.Source = abs
		l.dir = filepath.Dir(abs)
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("config: working directory: %w", err)
		}
		l.dir = wd
	}
	if root, ok := l.parseYAML(data); ok {
		l.config(root, cfg)
	}
	if len(l.problems) > 0 {
		return nil, l.problems.sorted()
	}
	return cfg, nil
}

// loader holds the state of one Parse.
type loader struct {
	opts     Options
	getenv   func(string) (string, bool)
	dir      string // the config file's directory
	problems Problems
	copies   int // nodes copied by expandNode
}

// add records a problem.
func (l *loader) add(key string, line int, format string, args ...any) {
	l.problems = append(l.problems, Problem{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// yamlProblem reports a YAML syntax error with its line.
func (l *loader) yamlProblem(err error) {
	line, msg := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
	l.add("", line, "invalid YAML: %s", msg)
}

// parseYAML parses data into its root node; nil for an empty document. Only one document
// is allowed.
func (l *loader) parseYAML(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		l.yamlProblem(err)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		l.yamlProblem(err)
		return nil, false
	default:
		if len(next.Content) > 0 && !isNull(next.Content[0]) {
			l.add("", next.Content[0].Line, "only one YAML document is allowed (found another after ---)")
		}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

// config fills cfg from the root node.
func (l *loader) config(root *yaml.Node, cfg *Config) {
	var pairs []pair
	if !isNull(root) {
		root = deref(root)
		if root.Kind != yaml.MappingNode {
			l.add("", root.Line, "the config must be a mapping of keys (state, log, listen, providers, folders), not %s", kindName(root))
			return
		}
		pairs = l.pairs(root, "")
	}
	l.unknown(pairs, "", topKeys())

	cfg.Log = l.log(find(pairs, "log"))
	if p := find(pairs, "listen"); p != nil {
		cfg.Listen = l.listen(p)
	}
	cfg.ListenToken = l.listenToken(pairs, cfg.Listen)
	cfg.Providers = l.providers(find(pairs, "providers"))
	cfg.Folders = l.folders(find(pairs, "folders"), cfg.Providers)

	cfg.State = DefaultStatePath()
	stateLine := 0
	if p := find(pairs, "state"); p != nil {
		stateLine = deref(p.val).Line
		if s, ok := l.scalar(p.val, "state"); ok && strings.TrimSpace(s) != "" {
			if path, ok := l.path(s, "state", stateLine); ok {
				cfg.State = path
			}
		}
	}
	for i, f := range cfg.Folders {
		if f.Path != "" && within(cfg.State, f.Path) {
			l.add("state", stateLine, "the state database %s is inside watched folder folders[%d] (%s): put it elsewhere", cfg.State, i, f.Path)
		}
	}
}

// path makes a path from the config absolute (relative to the config's directory) and
// clean. A leading ~ is refused: chute does not run through a shell.
func (l *loader) path(s, key string, line int) (string, bool) {
	if s == "~" || strings.HasPrefix(s, "~/") || strings.HasPrefix(s, `~\`) {
		l.add(key, line, "~ is not expanded: use an absolute path or ${HOME}")
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(l.dir, s)
	}
	return filepath.Clean(s), true
}

// within reports whether path is dir or inside it, comparing whole path elements.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil || filepath.IsAbs(rel) {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}

// enum returns s lower-cased when it is one of values (or def when s is ""), else reports
// a problem.
func (l *loader) enum(s, def, key string, line int, values []string) (string, bool) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "" {
		return def, true
	}
	if contains(values, v) {
		return v, true
	}
	l.add(key, line, "must be one of %s, got %q", strings.Join(values, ", "), s)
	return def, false
}

// mapping returns the pairs of the mapping at p, or nil with a problem if it is not one.
func (l *loader) mapping(p *pair, key string) ([]pair, bool) {
	v := deref(p.val)
	if isNull(v) {
		return nil, true
	}
	if v.Kind != yaml.MappingNode {
		l.add(key, v.Line, "must be a mapping, not %s", kindName(v))
		return nil, false
	}
	return l.pairs(v, key), true
}

// log reads the `log` section.
func (l *loader) log(p *pair) Log {
	lg := Log{Level: DefaultLogLevel, Format: DefaultLogFormat}
	if p == nil {
		return lg
	}
	pairs, ok := l.mapping(p, "log")
	if !ok {
		return lg
	}
	l.unknown(pairs, "log", logKeys())
	if q := find(pairs, "level"); q != nil {
		if s, ok := l.scalar(q.val, "log.level"); ok {
			lg.Level, _ = l.enum(s, DefaultLogLevel, "log.level", deref(q.val).Line, logLevels())
		}
	}
	if q := find(pairs, "format"); q != nil {
		if s, ok := l.scalar(q.val, "log.format"); ok {
			lg.Format, _ = l.enum(s, DefaultLogFormat, "log.format", deref(q.val).Line, logFormats())
		}
	}
	return lg
}

// listen reads and checks `listen`.
func (l *loader) listen(p *pair) string {
	s, ok := l.scalar(p.val, "listen")
	s = strings.TrimSpace(s)
	if !ok || s == "" {
		return ""
	}
	line := deref(p.val).Line
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		msg := err.Error()
		if errors.As(err, &ae) {
			msg = ae.Err
		}
		l.add("listen", line, "bad address %q: %s (use host:port, e.g. 127.0.0.1:9477)", s, msg)
		return ""
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		l.add("listen", line, "bad port %q in %q: use a number from 0 to 65535", port, s)
		return ""
	}
	return s
}

// minListenToken is the shortest listen_token accepted: it guards the jobs API on the
// network, so it must not be guessable.
const minListenToken = 16

// listenToken reads `listen_token` or `listen_token_file` and checks that a listener on a
// non-loopback address has one. The token never appears in a problem.
func (l *loader) listenToken(pairs []pair, listen string) string {
	tok, file := find(pairs, "listen_token"), find(pairs, "listen_token_file")
	var token string
	line := 0
	switch {
	case tok != nil && file != nil:
		l.add("listen_token", tok.key.Line, "give listen_token or listen_token_file, not both")
		return ""
	case tok != nil:
		line = tok.key.Line
		s, ok := l.scalar(tok.val, "listen_token")
		if !ok {
			return ""
		}
		token = strings.TrimSpace(s)
	case file != nil:
		line = file.key.Line
		name, ok := l.scalar(file.val, "listen_token_file")
		if !ok {
			return ""
		}
		if strings.TrimSpace(name) == "" {
			l.add("listen_token_file", line, "must be the path of a file holding the token")
			return ""
		}
		path, ok := l.path(name, "listen_token_file", line)
		if !ok {
			return ""
		}
		s, err := readSecret(path)
		if err != nil {
			l.add("listen_token_file", line, "cannot read secret file: %v", err)
			return ""
		}
		token = s
	}
	key := "listen_token"
	if file != nil {
		key = "listen_token_file"
	}
	switch {
	case (tok != nil || file != nil) && len(token) < minListenToken:
		l.add(key, line, "the token must be at least %d characters (not shown: it is a secret); e.g. `openssl rand -hex 24`", minListenToken)
		return ""
	case strings.ContainsAny(token, " \t\r\n"):
		l.add(key, line, "the token must not contain spaces or line breaks (not shown: it is a secret)")
		return ""
	}
	if listen != "" && token == "" && !LoopbackListen(listen) {
		line := 0
		if p := find(pairs, "listen"); p != nil {
			line = deref(p.val).Line
		}
		l.add("listen", line, "%s is not a loopback address: the jobs API would be open to the network; set listen_token (or listen_token_file), or listen on 127.0.0.1", listen)
	}
	return token
}

// LoopbackListen reports whether a `listen` address binds loopback only: localhost, or an
// IP address that is loopback. An empty host ("":9477) binds every interface.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// providers reads the `providers` section.
func (l *loader) providers(p *pair) map[string]*Provider {
	out := make(map[string]*Provider)
	if p == nil {
		l.add("providers", 0, "at least one provider is required")
		return out
	}
	pairs, ok := l.mapping(p, "providers")
	if !ok {
		return out
	}
	if len(pairs) == 0 {
		l.add("providers", p.key.Line, "at least one provider is required")
		return out
	}
	for _, q := range pairs {
		out[q.name] = l.provider(q)
	}
	return out
}

// provider reads one provider.
func (l *loader) provider(p pair) *Provider {
	path := join("providers", p.name)
	prov := &Provider{
		Name:             p.name,
		Concurrency:      DefaultConcurrency,
		SmallConcurrency: DefaultSmallConcurrency,
		MaxAttempts:      DefaultMaxAttempts,
		Line:             p.key.Line,
	}
	if strings.TrimSpace(p.name) == "" {
		l.add(path, p.key.Line, "a provider name must not be empty")
	}
	pairs, ok := l.mapping(&p, path)
	if !ok {
		return prov
	}
	var rest []pair
	for _, q := range pairs {
		if !contains(providerKeys(), q.name) {
			rest = append(rest, q)
		}
	}

	var info TypeInfo
	known := false
	if q := find(pairs, "type"); q == nil {
		l.add(join(path, "type"), prov.Line, "required")
	} else if s, ok := l.scalar(q.val, join(path, "type")); ok {
		prov.Type = strings.TrimSpace(s)
		switch {
		case prov.Type == "":
			l.add(join(path, "type"), q.key.Line, "required")
		case l.opts.Types == nil:
			l.add(join(path, "type"), q.key.Line, "unknown provider type %q", prov.Type)
		default:
			info, known = l.opts.Types(prov.Type)
			if !known {
				l.add(join(path, "type"), q.key.Line, "unknown provider type %q", prov.Type)
			}
		}
	}

	endpointLine := prov.Line
	if q := find(pairs, "endpoint"); q != nil {
		endpointLine = q.key.Line
		if s, ok := l.scalar(q.val, join(path, "endpoint")); ok {
			prov.Endpoint = strings.TrimSpace(s)
			if prov.Endpoint != "" {
				u, err := url.Parse(prov.Endpoint)
				var ue *url.Error
				if errors.As(err, &ue) {
					err = ue.Err
				}
				if err != nil {
					l.add(join(path, "endpoint"), endpointLine, "must be an absolute http or https URL: %v", err)
				} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					l.add(join(path, "endpoint"), endpointLine, "must be an absolute http or https URL, got %q", u.Redacted())
				}
			}
		}
	}
	if known && info.EndpointRequired && prov.Endpoint == "" && l.noProblem(join(path, "endpoint")) {
		l.add(join(path, "endpoint"), endpointLine, "required")
	}

	if q := find(pairs, "concurrency"); q != nil {
		key := join(path, "concurrency")
		if n, ok := l.intValue(q.val, key, DefaultConcurrency); ok {
			if n < 1 || n > MaxConcurrency {
				l.add(key, deref(q.val).Line, "must be from 1 to %d, got %d", MaxConcurrency, n)
			} else {
				prov.Concurrency, prov.SmallConcurrency = n, n
			}
		}
	}
	if q := find(pairs, "max_attempts"); q != nil {
		key := join(path, "max_attempts")
		if n, ok := l.intValue(q.val, key, DefaultMaxAttempts); ok {
			if n < 1 {
				l.add(key, deref(q.val).Line, "must be at least 1, got %d", n)
			} else {
				prov.MaxAttempts = n
			}
		}
	}

	if known {
		prov.Options = l.options(info, path, prov.Line, rest)
	} else {
		// Without a type there is no knowing which keys are right; point out only the
		// likely typos of the common keys (a misspelt `type`, say).
		for _, q := range rest {
			if suggest(q.name, providerKeys()) != "" {
				l.unknownKey(q, path, providerKeys())
			}
		}
	}
	return prov
}

// noProblem reports whether no problem has been recorded for key.
func (l *loader) noProblem(key string) bool {
	for _, p := range l.problems {
		if p.Key == key {
			return false
		}
	}
	return true
}

// folderPos remembers where a folder's path and move_to were given, for the checks
// across folders.
type folderPos struct {
	pathLine, moveLine int
}

// folders reads the `folders` section and checks the folders against each other.
func (l *loader) folders(p *pair, providers map[string]*Provider) []*Folder {
	if p == nil {
		l.add("folders", 0, "at least one folder is required")
		return nil
	}
	v := deref(p.val)
	if isNull(v) {
		l.add("folders", p.key.Line, "at least one folder is required")
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		l.add("folders", v.Line, "must be a list of folders, not %s", kindName(v))
		return nil
	}
	if len(v.Content) == 0 {
		l.add("folders", v.Line, "at least one folder is required")
		return nil
	}
	var out []*Folder
	var pos []folderPos
	for i, item := range v.Content {
		f, fp := l.folder(i, deref(item), providers)
		out = append(out, f)
		pos = append(pos, fp)
	}

	for j, fj := range out {
		if fj.Path == "" {
			continue
		}
		for i, fi := range out[:j] {
			if fi.Path == "" {
				continue
			}
			key := index("folders", j) + ".path"
			switch {
			case within(fj.Path, fi.Path) && within(fi.Path, fj.Path):
				l.add(key, pos[j].pathLine, "same folder as folders[%d]: a folder may be watched only once", i)
			case within(fj.Path, fi.Path):
				l.add(key, pos[j].pathLine, "overlaps folders[%d]: %s is inside %s", i, fj.Path, fi.Path)
			case within(fi.Path, fj.Path):
				l.add(key, pos[j].pathLine, "overlaps folders[%d]: %s is inside %s", i, fi.Path, fj.Path)
			}
		}
	}
	for j, fj := range out {
		if fj.MoveTo == "" {
			continue
		}
		for i, fi := range out {
			if fi.Path != "" && within(fj.MoveTo, fi.Path) {
				l.add(index("folders", j)+".move_to", pos[j].moveLine, "%s is inside watched folder folders[%d] (%s): moved files would be uploaded again", fj.MoveTo, i, fi.Path)
			}
		}
	}
	return out
}

// folder reads one folder.
func (l *loader) folder(i int, n *yaml.Node, providers map[string]*Provider) (*Folder, folderPos) {
	path := index("folders", i)
	f := &Folder{
		Recursive: true,
		Settle:    DefaultSettle,
		MaxWait:   DefaultMaxWait,
		After:     DefaultAfter,
		Line:      n.Line,
	}
	pos := folderPos{pathLine: n.Line, moveLine: n.Line}
	if isNull(n) || n.Kind != yaml.MappingNode {
		l.add(path, n.Line, "must be a mapping with at least path and provider, not %s", kindName(n))
		return f, pos
	}
	pairs := l.pairs(n, path)
	l.unknown(pairs, path, folderKeys())

	if q := find(pairs, "path"); q == nil {
		l.add(join(path, "path"), n.Line, "required")
	} else {
		key := join(path, "path")
		pos.pathLine = q.key.Line
		if s, ok := l.scalar(q.val, key); ok {
			if strings.TrimSpace(s) == "" {
				l.add(key, q.key.Line, "required")
			} else if p, ok := l.path(s, key, q.key.Line); ok {
				f.Path = p
				if !l.opts.SkipFilesystem {
					l.checkDir(p, key, q.key.Line)
				}
			}
		}
	}

	if q := find(pairs, "provider"); q == nil {
		l.add(join(path, "provider"), n.Line, "required")
	} else {
		key := join(path, "provider")
		if s, ok := l.scalar(q.val, key); ok {
			f.Provider = strings.TrimSpace(s)
			switch {
			case f.Provider == "":
				l.add(key, q.key.Line, "required")
			case providers[f.Provider] == nil:
				names := make([]string, 0, len(providers))
				for name := range providers {
					names = append(names, name)
				}
				msg := fmt.Sprintf("unknown provider %q", f.Provider)
				if s := suggest(f.Provider, names); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				} else if len(providers) > 0 {
					msg += " (not under providers)"
				}
				l.add(key, q.key.Line, "%s", msg)
			}
		}
	}

	if q := find(pairs, "recursive"); q != nil {
		f.Recursive, _ = l.boolValue(q.val, join(path, "recursive"), true)
	}
	for _, name := range []string{"include", "exclude"} {
		q := find(pairs, name)
		if q == nil {
			continue
		}
		key := join(path, name)
		items, _ := l.stringList(q.val, key)
		var patterns []string
		for j, it := range items {
			if _, err := filepath.Match(it.s, ""); err != nil {
				l.add(index(key, j), it.line, "bad pattern %q: %v", it.s, err)
				continue
			}
			if it.s == "" {
				l.add(index(key, j), it.line, "empty pattern")
				continue
			}
			patterns = append(patterns, it.s)
		}
		if name == "include" {
			f.Include = patterns
		} else {
			f.Exclude = patterns
		}
	}

	settleOK := true
	if q := find(pairs, "settle"); q != nil {
		key := join(path, "settle")
		var ok bool
		if f.Settle, ok = l.durationValue(q.val, key, DefaultSettle); !ok {
			settleOK = false
		} else if f.Settle <= 0 {
			l.add(key, deref(q.val).Line, "must be longer than 0")
			settleOK = false
		}
	}
	maxWaitOK := true
	if q := find(pairs, "max_wait"); q != nil {
		f.MaxWait, maxWaitOK = l.durationValue(q.val, join(path, "max_wait"), DefaultMaxWait)
	}
	if settleOK && maxWaitOK && f.MaxWait < f.Settle {
		line := keyLine(pairs, "max_wait", keyLine(pairs, "settle", n.Line))
		l.add(join(path, "max_wait"), line, "must not be shorter than settle (%s), got %s", f.Settle, f.MaxWait)
	}

	afterLine := n.Line
	if q := find(pairs, "after"); q != nil {
		afterLine = q.key.Line
		if s, ok := l.scalar(q.val, join(path, "after")); ok {
			f.After, _ = l.enum(s, DefaultAfter, join(path, "after"), q.key.Line, afterValues())
		}
	}
	q := find(pairs, "move_to")
	moveGiven := false
	if q != nil {
		key := join(path, "move_to")
		pos.moveLine = q.key.Line
		if s, ok := l.scalar(q.val, key); ok && strings.TrimSpace(s) != "" {
			moveGiven = true
			if p, ok := l.path(s, key, q.key.Line); ok {
				f.MoveTo = p
			}
		} else if !ok {
			moveGiven = true
		}
	}
	switch {
	case f.After == AfterMove && !moveGiven:
		l.add(join(path, "move_to"), afterLine, "required with after: move")
	case f.After != AfterMove && moveGiven && (find(pairs, "after") == nil || l.noProblem(join(path, "after"))):
		l.add(join(path, "move_to"), pos.moveLine, "only used with after: move (after is %s)", f.After)
		f.MoveTo = ""
	}
	return f, pos
}

// checkDir reports a folder that does not exist, is not a directory or cannot be read.
func (l *loader) checkDir(path, key string, line int) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.add(key, line, "folder %s does not exist", path)
		return
	case err != nil:
		l.add(key, line, "cannot access folder: %v", err)
		return
	case !st.IsDir():
		l.add(key, line, "%s is not a folder", path)
		return
	}
	d, err := os.Open(path)
	if err == nil {
		_, err = d.ReadDir(1)
		d.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		l.add(key, line, "cannot read folder: %v", err)
	}
}
