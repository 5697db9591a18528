package configs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Options structs mirroring the five provider types (and one with odd field types).

type gcoreOpts struct {
	APIKey      string `yaml:"api_key" chute:"required,secret"`
	Wait        string `yaml:"wait"`
	Description string `yaml:"description"`
	DirectoryID int    `yaml:"directory_id"`
	Priority    int    `yaml:"priority"`
}

func (o *gcoreOpts) Validate() []FieldError {
	switch o.Wait {
	case "uploaded", "viewable", "ready":
		return nil
	}
	return []FieldError{{Key: "wait", Msg: "must be uploaded, viewable or ready"}}
}

type tusOpts struct {
	ChunkSize int64             `yaml:"chunk_size"`
	Headers   map[string]string `yaml:"headers"`
}

type redgifsOpts struct {
	Token       string        `yaml:"token" chute:"required,secret"`
	Tags        []string      `yaml:"tags"`
	Private     bool          `yaml:"private"`
	KeepAudio   bool          `yaml:"keep_audio"`
	Description string        `yaml:"description"`
	Niches      []string      `yaml:"niches"`
	Wait        string        `yaml:"wait"`
	MaxWait     time.Duration `yaml:"max_wait"`
}

type uploadgigOpts struct {
	User string `yaml:"user" chute:"required"`
	Pass string `yaml:"pass" chute:"required,secret"`
}

type xvidOpts struct {
	ClientID     string `yaml:"client_id" chute:"required"`
	ClientSecret string `yaml:"client_secret" chute:"required,secret"`
	PipelineID   string `yaml:"pipeline_id" chute:"required"`
}

// miscOpts exercises the other field types and a Validator with a whole-provider error.
type miscOpts struct {
	Timeout time.Duration `yaml:"timeout"`
	Ratio   float64       `yaml:"ratio"`
	Big     int64         `yaml:"big"`
	Flag    bool          `yaml:"flag"`
	List    []string      `yaml:"list"`
	Plain   string        // key "plain", as yaml.v3 names untagged fields
	Hidden  string        `yaml:"-"`
}

func (o *miscOpts) Validate() []FieldError {
	if o.Ratio < 0 {
		return []FieldError{{Msg: "ratio and big disagree"}}
	}
	return nil
}

func testTypes(name string) (TypeInfo, bool) {
	switch name {
	case "gcore":
		return TypeInfo{NewOptions: func() any { return &gcoreOpts{Wait: "uploaded"} }}, true
	case "tus":
		return TypeInfo{NewOptions: func() any { return &tusOpts{ChunkSize: 8 << 20} }, EndpointRequired: true}, true
	case "redgifs":
		return TypeInfo{NewOptions: func() any { return &redgifsOpts{KeepAudio: true} }}, true
	case "uploadgig":
		return TypeInfo{NewOptions: func() any { return &uploadgigOpts{} }}, true
	case "xvid":
		return TypeInfo{NewOptions: func() any { return &xvidOpts{} }}, true
	case "misc":
		return TypeInfo{NewOptions: func() any { return &miscOpts{Timeout: time.Minute} }}, true
	case "bare":
		return TypeInfo{}, true
	}
	return TypeInfo{}, false
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// testDir makes a temporary config directory with the folders in, in/sub, inbox, other
// and done, and writes text to chute.yaml in it.
func testDir(t *testing.T, text string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{"in/sub", "inbox", "other", "done"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path = filepath.Join(dir, "chute.yaml")
	writeFile(t, path, text)
	return dir, path
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mustLoad loads a config that must be valid.
func mustLoad(t *testing.T, text string, env map[string]string) (*Config, string) {
	t.Helper()
	dir, path := testDir(t, text)
	cfg, err := Load(path, Options{Types: testTypes, Getenv: envOf(env)})
	if err != nil {
		t.Fatalf("Load: unexpected error:\n%v", err)
	}
	return cfg, dir
}

// problemsOf returns err as Problems, failing the test when it is not.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want problems")
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T (%v), want Problems", err, err)
	}
	return ps
}

// want is an expected problem: exact key and line, msg a substring of the message.
type want struct {
	key  string
	line int
	msg  string
}

// checkProblems asserts that ps are exactly ws, in order.
func checkProblems(t *testing.T, ps Problems, ws []want) {
	t.Helper()
	ok := len(ps) == len(ws)
	for i := 0; ok && i < len(ws); i++ {
		ok = ps[i].Key == ws[i].key && ps[i].Line == ws[i].line && strings.Contains(ps[i].Msg, ws[i].msg)
	}
	if ok {
		return
	}
	var got, exp strings.Builder
	for _, p := range ps {
		got.WriteString("\n  " + p.String())
	}
	for _, w := range ws {
		exp.WriteString("\n  " + Problem{Key: w.key, Line: w.line, Msg: "…" + w.msg + "…"}.String())
	}
	t.Errorf("problems:%s\nwant:%s", got.String(), exp.String())
}

// base is a valid config of 7 lines; tests append to it.
const base = `providers:
  gc:
    type: gcore
    api_key: k
folders:
  - path: in
    provider: gc
`

func TestProblems(t *testing.T) {
	t.Parallel()
	notRoot := func(t *testing.T) {
		if runtime.GOOS == "windows" || os.Geteuid() == 0 {
			t.Skip("permissions do not stop root (or Windows)")
		}
	}
	cases := []struct {
		name   string
		text   string
		env    map[string]string
		setup  func(t *testing.T, dir string)
		skipFS bool
		want   []want
	}{
		{name: "valid base", text: base},

		// Unknown keys, everywhere, with suggestions.
		{name: "unknown top-level key", text: base + "foo: 1\n",
			want: []want{{"foo", 8, `unknown key "foo"`}}},
		{name: "top-level typo", text: base + "lisen: 127.0.0.1:1\n",
			want: []want{{"lisen", 8, `unknown key "lisen"; did you mean "listen"?`}}},
		{name: "unknown log key", text: base + "log:\n  levle: debug\n",
			want: []want{{"log.levle", 9, `unknown key "levle"; did you mean "level"?`}}},
		{name: "unknown provider key", text: `providers:
  gc:
    type: gcore
    api_key: k
    descripton: x
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.descripton", 5, `unknown key "descripton"; did you mean "description"?`}}},
		{name: "unknown folder key", text: base + "    setle: 3s\n",
			want: []want{{"folders[0].setle", 8, `unknown key "setle"; did you mean "settle"?`}}},
		{name: "keys are not expanded", text: base + "${K}: 1\n", env: map[string]string{"K": "state"},
			want: []want{{"${K}", 8, `unknown key "${K}"`}}},
		{name: "_file for a field that is not secret", text: `providers:
  gc:
    type: gcore
    api_key: k
    description_file: d.txt
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.description_file", 5, `unknown key "description_file"`}}},
		{name: "duplicate key", text: base + "    settle: 1s\n    settle: 2s\n",
			want: []want{{"folders[0].settle", 9, "duplicate key (first given on line 8)"}}},

		// log and listen.
		{name: "log enums", text: base + "log:\n  level: verbose\n  format: xml\n",
			want: []want{
				{"log.level", 9, `must be one of debug, info, warn, error, got "verbose"`},
				{"log.format", 10, `must be one of text, json, got "xml"`},
			}},
		{name: "log not a mapping", text: base + "log: debug\n",
			want: []want{{"log", 8, "must be a mapping"}}},
		{name: "listen without port", text: base + "listen: 9477\n",
			want: []want{{"listen", 8, `bad address "9477": missing port in address`}}},
		{name: "listen named port", text: base + "listen: localhost:http\n",
			want: []want{{"listen", 8, `bad port "http"`}}},
		{name: "listen port too big", text: base + "listen: :70000\n",
			want: []want{{"listen", 8, `bad port "70000"`}}},
		{name: "listen ok", text: base + "listen: 127.0.0.1:0\n"},
		{name: "listen localhost ok", text: base + "listen: localhost:9477\n"},
		{name: "listen on the network needs a token", text: base + "listen: :9477\n",
			want: []want{{"listen", 8, `:9477 is not a loopback address`}}},
		{name: "listen on the network with a token", text: base + "listen: 0.0.0.0:9477\nlisten_token: 0123456789abcdef0123\n"},
		{name: "listen token too short", text: base + "listen: 0.0.0.0:9477\nlisten_token: sesame-XYZ\n",
			want: []want{{"listen_token", 9, "at least 16 characters (not shown: it is a secret)"}}},
		{name: "listen token and file", text: base + "listen_token: 0123456789abcdef0123\nlisten_token_file: /nonexistent\n",
			want: []want{{"listen_token", 8, "not both"}}},
		{name: "listen token file missing", text: base + "listen_token_file: /nonexistent/token\n",
			want: []want{{"listen_token_file", 8, "cannot read secret file"}}},

		// Providers.
		{name: "type missing", text: `providers:
  gc:
    api_key: k
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.type", 2, "required"}}},
		{name: "type misspelt", text: `providers:
  gc:
    tpye: gcore
    api_key: k
folders:
  - path: in
    provider: gc
`, want: []want{
			{"providers.gc.type", 2, "required"},
			{"providers.gc.tpye", 3, `did you mean "type"?`},
		}},
		{name: "unknown type", text: `providers:
  gc:
    type: gcorp
    api_key: k
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.type", 3, `unknown provider type "gcorp"`}}},
		{name: "provider not a mapping", text: `providers:
  gc: gcore
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc", 2, "must be a mapping"}}},
		{name: "bad endpoints", text: `providers:
  gc:
    type: gcore
    api_key: k
    endpoint: ftp://api.example.com
  gd:
    type: gcore
    api_key: k
    endpoint: api.example.com/v1
  ge:
    type: gcore
    api_key: k
    endpoint: "ftp://user:hunter2@api.example.com"
  gf:
    type: gcore
    api_key: k
    endpoint: "http://a b.example.com/"
folders:
  - path: in
    provider: gc
`, want: []want{
			{"providers.gc.endpoint", 5, `must be an absolute http or https URL, got "ftp://api.example.com"`},
			{"providers.gd.endpoint", 9, "must be an absolute http or https URL"},
			{"providers.ge.endpoint", 13, `got "ftp://user:xxxxx@api.example.com"`},
			{"providers.gf.endpoint", 17, "must be an absolute http or https URL: invalid character"},
		}},
		{name: "tus endpoint required", text: `providers:
  own:
    type: tus
folders:
  - path: in
    provider: own
`, want: []want{{"providers.own.endpoint", 2, "required"}}},
		{name: "tus endpoint empty variable", env: map[string]string{"EP": ""}, text: `providers:
  own:
    type: tus
    endpoint: ${EP}
folders:
  - path: in
    provider: own
`, want: []want{{"providers.own.endpoint", 4, "required"}}},
		{name: "concurrency and max_attempts", text: `providers:
  gc:
    type: gcore
    api_key: k
    concurrency: 0
    max_attempts: 0
  gd:
    type: gcore
    api_key: k
    concurrency: 65
    max_attempts: x
folders:
  - path: in
    provider: gc
`, want: []want{
			{"providers.gc.concurrency", 5, "must be from 1 to 64, got 0"},
			{"providers.gc.max_attempts", 6, "must be at least 1, got 0"},
			{"providers.gd.concurrency", 10, "must be from 1 to 64, got 65"},
			{"providers.gd.max_attempts", 11, `must be a whole number, got "x"`},
		}},
		{name: "required secret missing", text: `providers:
  gc:
    type: gcore
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.api_key", 2, "required (or api_key_file)"}}},
		{name: "all required missing", text: `providers:
  xv:
    type: xvid
folders:
  - path: in
    provider: xv
`, want: []want{
			{"providers.xv.client_id", 2, "required"},
			{"providers.xv.client_secret", 2, "required (or client_secret_file)"},
			{"providers.xv.pipeline_id", 2, "required"},
		}},
		{name: "required given empty", text: `providers:
  ug:
    type: uploadgig
    user: ""
    pass: p
folders:
  - path: in
    provider: ug
`, want: []want{{"providers.ug.user", 4, "required"}}},
		{name: "option decode error", text: `providers:
  gc:
    type: gcore
    api_key: k
    directory_id: abc
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.directory_id", 5, "cannot unmarshal !!str `abc` into int"}}},
		{name: "option list given a mapping", text: `providers:
  rg:
    type: redgifs
    token: t
    tags:
      a: 1
folders:
  - path: in
    provider: rg
`, want: []want{{"providers.rg.tags", 6, "cannot unmarshal !!map into []string"}}},
		{name: "validator", text: `providers:
  gc:
    type: gcore
    api_key: k
    wait: soon
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.wait", 5, "must be uploaded, viewable or ready"}}},
		{name: "validator error without key", text: `providers:
  m:
    type: misc
    ratio: -1
folders:
  - path: in
    provider: m
`, want: []want{{"providers.m", 2, "ratio and big disagree"}}},
		{name: "option duration without unit", text: `providers:
  m:
    type: misc
    timeout: 3
    big: 1.5x
    hidden: x
folders:
  - path: in
    provider: m
`, want: []want{
			{"providers.m.timeout", 4, `bad duration "3": use a unit, e.g. 3s`},
			{"providers.m.big", 5, "cannot unmarshal"},
			{"providers.m.hidden", 6, `unknown key "hidden"`},
		}},
		{name: "type without options", text: `providers:
  b:
    type: bare
    extra: 1
folders:
  - path: in
    provider: b
`, want: []want{{"providers.b.extra", 4, `unknown key "extra"`}}},

		// Secrets from files.
		{name: "secret and secret file", text: `providers:
  gc:
    type: gcore
    api_key: k
    api_key_file: key.txt
folders:
  - path: in
    provider: gc
`, setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "key.txt"), "x") },
			want: []want{{"providers.gc.api_key_file", 5, "give either api_key or api_key_file, not both"}}},
		{name: "secret file before secret", text: `providers:
  gc:
    type: gcore
    api_key_file: key.txt
    api_key: k
folders:
  - path: in
    provider: gc
`, setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "key.txt"), "x") },
			want: []want{{"providers.gc.api_key_file", 4, "give either api_key or api_key_file, not both"}}},
		{name: "secret file missing", text: `providers:
  gc:
    type: gcore
    api_key_file: nope.txt
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.api_key_file", 4, "cannot read secret file"}}},
		{name: "secret file empty", text: `providers:
  gc:
    type: gcore
    api_key_file: key.txt
folders:
  - path: in
    provider: gc
`, setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "key.txt"), " \r\n") },
			want: []want{{"providers.gc.api_key_file", 4, "is empty"}}},
		{name: "secret file is a folder", text: `providers:
  gc:
    type: gcore
    api_key_file: other
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.api_key_file", 4, "is a directory"}}},
		{name: "secret file unreadable", text: `providers:
  gc:
    type: gcore
    api_key_file: key.txt
folders:
  - path: in
    provider: gc
`, setup: func(t *testing.T, dir string) {
			notRoot(t)
			writeFile(t, filepath.Join(dir, "key.txt"), "x")
			if err := os.Chmod(filepath.Join(dir, "key.txt"), 0); err != nil {
				t.Fatal(err)
			}
		}, want: []want{{"providers.gc.api_key_file", 4, "permission denied"}}},

		// ${VAR} expansion.
		{name: "unset variable", text: `providers:
  gc:
    type: gcore
    api_key: ${NOPE}
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.api_key", 4, "environment variable NOPE is not set"}}},
		{name: "empty variable is set", env: map[string]string{"EMPTY": ""}, text: `providers:
  gc:
    type: gcore
    api_key: ${EMPTY}
folders:
  - path: in
    provider: gc
`, want: []want{{"providers.gc.api_key", 4, "required (or api_key_file)"}}},
		{name: "unset variable in a list item", text: base + "    include:\n      - \"*.mp4\"\n      - \"*.${EXT}\"\n",
			want: []want{{"folders[0].include[1]", 10, "environment variable EXT is not set"}}},
		{name: "unset variable in an options map", text: `providers:
  own:
    type: tus
    endpoint: http://tus.example.com/files/
    headers:
      X-Token: ${TOK}
folders:
  - path: in
    provider: own
`, want: []want{{"providers.own.headers.X-Token", 6, "environment variable TOK is not set"}}},
		{name: "unset variables in common keys", text: `state: ${STATE}
providers:
  gc:
    type: ${TYPE}
    api_key: k
folders:
  - path: ${DIR}
    provider: gc
`, want: []want{
			{"state", 1, "environment variable STATE is not set"},
			{"providers.gc.type", 4, "environment variable TYPE is not set"},
			{"folders[0].path", 7, "environment variable DIR is not set"},
		}},
		{name: "bad references", text: `providers:
  gc:
    type: gcore
    api_key: "${1X}"
    description: "a ${X"
folders:
  - path: in
    provider: gc
`, want: []want{
			{"providers.gc.api_key", 4, "bad variable reference"},
			{"providers.gc.description", 5, "unterminated ${"},
		}},

		// Folders.
		{name: "folder without path and provider", text: `providers:
  gc:
    type: gcore
    api_key: k
folders:
  - recursive: true
`, want: []want{
			{"folders[0].path", 6, "required"},
			{"folders[0].provider", 6, "required"},
		}},
		{name: "folder not a mapping", text: `providers:
  gc:
    type: gcore
    api_key: k
folders:
  - in
`, want: []want{{"folders[0]", 6, "must be a mapping"}}},
		{name: "unknown provider with suggestion", text: strings.Replace(base, "provider: gc", "provider: gx", 1),
			want: []want{{"folders[0].provider", 7, `unknown provider "gx"; did you mean "gc"?`}}},
		{name: "unknown provider", text: strings.Replace(base, "provider: gc", "provider: zzzz", 1),
			want: []want{{"folders[0].provider", 7, `unknown provider "zzzz"`}}},
		{name: "bad patterns", text: base + "    include: [\"*.mp4\", \"[\"]\n    exclude:\n      - \"a[b\"\n",
			want: []want{
				{"folders[0].include[1]", 8, `bad pattern "["`},
				{"folders[0].exclude[0]", 10, `bad pattern "a[b"`},
			}},
		{name: "recursive not a bool", text: base + "    recursive: maybe\n",
			want: []want{{"folders[0].recursive", 8, `must be true or false, got "maybe"`}}},
		{name: "settle zero", text: base + "    settle: 0s\n",
			want: []want{{"folders[0].settle", 8, "must be longer than 0"}}},
		{name: "settle without unit", text: base + "    settle: 3\n",
			want: []want{{"folders[0].settle", 8, `bad duration "3": use a unit, e.g. 3s`}}},
		{name: "settle not a duration", text: base + "    settle: soon\n",
			want: []want{{"folders[0].settle", 8, `bad duration "soon"`}}},
		{name: "max_wait shorter than settle", text: base + "    settle: 10s\n    max_wait: 5s\n",
			want: []want{{"folders[0].max_wait", 9, "must not be shorter than settle (10s), got 5s"}}},
		{name: "settle longer than default max_wait", text: base + "    settle: 2h\n",
			want: []want{{"folders[0].max_wait", 8, "must not be shorter than settle (2h0m0s), got 1h0m0s"}}},
		{name: "after unknown", text: base + "    after: archive\n",
			want: []want{{"folders[0].after", 8, `must be one of keep, delete, move, got "archive"`}}},
		{name: "after move without move_to", text: base + "    after: move\n",
			want: []want{{"folders[0].move_to", 8, "required with after: move"}}},
		{name: "move_to without after move", text: base + "    move_to: done\n",
			want: []want{{"folders[0].move_to", 8, "only used with after: move (after is keep)"}}},
		{name: "move_to inside a watched folder", text: `providers:
  gc:
    type: gcore
    api_key: k
folders:
  - path: other
    provider: gc
  - path: in
    provider: gc
    after: move
    move_to: other/done
`, want: []want{{"folders[1].move_to", 11, "inside watched folder folders[0]"}}},
		{name: "move_to the folder itself", text: base + "    after: move\n    move_to: ./in\n",
			want: []want{{"folders[0].move_to", 9, "inside watched folder folders[0]"}}},
		{name: "overlapping folders", text: `providers:
  gc:
    type: gcore
    api_key: k
folders:
  - path: in
    provider: gc
  - path: in/sub
    provider: gc
  - path: ./in/
    provider: gc
  - path: other
    provider: gc
`, want: []want{
			{"folders[1].path", 8, "overlaps folders[0]"},
			{"folders[2].path", 10, "same folder as folders[0]"},
			{"folders[2].path", 10, "overlaps folders[1]"},
		}},
		{name: "name prefix is not overlap", text: base + "  - path: inbox\n    provider: gc\n"},
		{name: "tilde", text: strings.Replace(base, "path: in", "path: ~/drop", 1),
			want: []want{{"folders[0].path", 6, "~ is not expanded"}}},
		{name: "folder missing", text: strings.Replace(base, "path: in", "path: nope", 1),
			want: []want{{"folders[0].path", 6, "does not exist"}}},
		{name: "folder missing but filesystem skipped", text: strings.Replace(base, "path: in", "path: nope", 1), skipFS: true},
		{name: "folder is a file", text: strings.Replace(base, "path: in", "path: afile", 1),
			setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "afile"), "x") },
			want:  []want{{"folders[0].path", 6, "is not a folder"}}},
		{name: "folder unreadable", text: base,
			setup: func(t *testing.T, dir string) {
				notRoot(t)
				if err := os.Chmod(filepath.Join(dir, "in"), 0o300); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(filepath.Join(dir, "in"), 0o755) })
			},
			want: []want{{"folders[0].path", 6, "cannot read folder"}}},
		{name: "state inside a watched folder", text: "state: in/state.db\n" + base,
			want: []want{{"state", 1, "inside watched folder folders[0]"}}},

		// Sections missing or empty.
		{name: "empty file", text: "",
			want: []want{
				{"providers", 0, "at least one provider is required"},
				{"folders", 0, "at least one folder is required"},
			}},
		{name: "only comments", text: "# nothing yet\n",
			want: []want{
				{"providers", 0, "at least one provider is required"},
				{"folders", 0, "at least one folder is required"},
			}},
		{name: "no providers", text: "providers: {}\nfolders:\n  - path: in\n    provider: gc\n",
			want: []want{
				{"providers", 1, "at least one provider is required"},
				{"folders[0].provider", 4, `unknown provider "gc"`},
			}},
		{name: "no folders", text: "providers:\n  gc:\n    type: gcore\n    api_key: k\nfolders: []\n",
			want: []want{{"folders", 5, "at least one folder is required"}}},
		{name: "folders null", text: "providers:\n  gc:\n    type: gcore\n    api_key: k\nfolders:\n",
			want: []want{{"folders", 5, "at least one folder is required"}}},
		{name: "folders not a list", text: "providers:\n  gc:\n    type: gcore\n    api_key: k\nfolders: in\n",
			want: []want{{"folders", 5, "must be a list of folders"}}},
		{name: "folders missing", text: "providers:\n  gc:\n    type: gcore\n    api_key: k\n",
			want: []want{{"folders", 0, "at least one folder is required"}}},

		// The file as a whole.
		{name: "invalid YAML", text: "providers:\n  gc: [\n",
			want: []want{{"", 2, "invalid YAML: did not find expected node content"}}},
		{name: "tab indentation", text: "providers:\n\tgc: {}\n",
			want: []want{{"", 2, "invalid YAML: found character that cannot start any token"}}},
		{name: "not a mapping", text: "- a\n- b\n",
			want: []want{{"", 1, "the config must be a mapping"}}},
		{name: "two documents", text: base + "---\nfoo: 1\n",
			want: []want{{"", 9, "only one YAML document is allowed"}}},
		{name: "self-referencing alias", text: base + "log: &a\n  level: *a\n",
			want: []want{{"log.level", 8, "must be a single value, not a mapping"}}},

		// Everything at once, sorted by line.
		{name: "many problems at once", text: `log:
  level: loud
providers:
  gc:
    type: gcore
    wait: soon
    concurrency: 100
  own:
    type: tus
folders:
  - path: missing
    provider: gc
    settle: 3
  - path: in
    provider: nope
    colour: red
`, want: []want{
			{"log.level", 2, `got "loud"`},
			{"providers.gc.api_key", 4, "required (or api_key_file)"},
			{"providers.gc.wait", 6, "must be uploaded, viewable or ready"},
			{"providers.gc.concurrency", 7, "must be from 1 to 64, got 100"},
			{"providers.own.endpoint", 8, "required"},
			{"folders[0].path", 11, "does not exist"},
			{"folders[0].settle", 13, `bad duration "3"`},
			{"folders[1].provider", 15, `unknown provider "nope"`},
			{"folders[1].colour", 16, `unknown key "colour"`},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, path := testDir(t, tc.text)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			cfg, err := Load(path, Options{Types: testTypes, Getenv: envOf(tc.env), SkipFilesystem: tc.skipFS})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				if cfg == nil {
					t.Fatal("nil config without error")
				}
				return
			}
			if cfg != nil {
				t.Errorf("config returned with problems")
			}
			checkProblems(t, problemsOf(t, err), tc.want)
		})
	}
}

func TestNoTypes(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(base), "", Options{SkipFilesystem: true})
	checkProblems(t, problemsOf(t, err), []want{{"providers.gc.type", 3, `unknown provider type "gcore"`}})
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, dir := mustLoad(t, base, nil)
	if want := filepath.Join(dir, "chute.yaml"); cfg.Source != want {
		t.Errorf("Source = %q, want %q", cfg.Source, want)
	}
	if cfg.State != DefaultStatePath() {
		t.Errorf("State = %q, want %q", cfg.State, DefaultStatePath())
	}
	if cfg.Log != (Log{Level: "info", Format: "text"}) {
		t.Errorf("Log = %+v", cfg.Log)
	}
	if cfg.Listen != "" {
		t.Errorf("Listen = %q", cfg.Listen)
	}
	p := cfg.Providers["gc"]
	if p == nil || len(cfg.Providers) != 1 {
		t.Fatalf("Providers = %v", cfg.Providers)
	}
	wantP := Provider{Name: "gc", Type: "gcore", Concurrency: 2, SmallConcurrency: 32, MaxAttempts: 10, Line: 2,
		Options: &gcoreOpts{APIKey: "k", Wait: "uploaded"}}
	if !reflect.DeepEqual(*p, wantP) {
		t.Errorf("provider = %+v, want %+v", *p, wantP)
	}
	if len(cfg.Folders) != 1 {
		t.Fatalf("Folders = %v", cfg.Folders)
	}
	wantF := Folder{Path: filepath.Join(dir, "in"), Provider: "gc", Recursive: true,
		Settle: 3 * time.Second, MaxWait: time.Hour, After: "keep", Line: 6}
	if !reflect.DeepEqual(*cfg.Folders[0], wantF) {
		t.Errorf("folder = %+v, want %+v", *cfg.Folders[0], wantF)
	}
}

func TestAllKeys(t *testing.T) {
	t.Parallel()
	cfg, dir := mustLoad(t, `state: data/state.db
log:
  level: DEBUG
  format: json
listen: 127.0.0.1:9477
providers:
  rg:
    type: redgifs
    token: t
    tags: [a, b]
    private: true
    keep_audio: false
    endpoint: http://127.0.0.1:1234/
    concurrency: 64
    max_attempts: 1
  own:
    type: tus
    endpoint: https://tus.example.com/files/
    chunk_size: 1024
    headers: {X-A: b}
  m:
    type: misc
    timeout: 1m30s
    ratio: 0.5
    big: 1099511627776
    flag: yes
    list: one
    plain: p
folders:
  - path: in
    provider: rg
    recursive: false
    include: ["*.mp4", "*.webm"]
    exclude: "*.part"
    settle: 500ms
    max_wait: 2h
    after: move
    move_to: done/rg
  - path: other
    provider: own
    after: delete
`, nil)
	if cfg.State != filepath.Join(dir, "data", "state.db") {
		t.Errorf("State = %q", cfg.State)
	}
	if cfg.Log != (Log{Level: "debug", Format: "json"}) || cfg.Listen != "127.0.0.1:9477" {
		t.Errorf("Log = %+v, Listen = %q", cfg.Log, cfg.Listen)
	}
	rg := cfg.Providers["rg"]
	if rg.Endpoint != "http://127.0.0.1:1234/" || rg.Concurrency != 64 || rg.MaxAttempts != 1 || rg.Line != 7 {
		t.Errorf("rg = %+v", rg)
	}
	if o := rg.Options.(*redgifsOpts); !reflect.DeepEqual(*o, redgifsOpts{Token: "t", Tags: []string{"a", "b"}, Private: true}) {
		t.Errorf("rg options = %+v", o)
	}
	if o := cfg.Providers["own"].Options.(*tusOpts); !reflect.DeepEqual(*o, tusOpts{ChunkSize: 1024, Headers: map[string]string{"X-A": "b"}}) {
		t.Errorf("own options = %+v", o)
	}
	wantM := miscOpts{Timeout: 90 * time.Second, Ratio: 0.5, Big: 1 << 40, Flag: true, List: []string{"one"}, Plain: "p"}
	if o := cfg.Providers["m"].Options.(*miscOpts); !reflect.DeepEqual(*o, wantM) {
		t.Errorf("m options = %+v, want %+v", o, wantM)
	}
	f := cfg.Folders[0]
	wantF := Folder{Path: filepath.Join(dir, "in"), Provider: "rg", Recursive: false,
		Include: []string{"*.mp4", "*.webm"}, Exclude: []string{"*.part"},
		Settle: 500 * time.Millisecond, MaxWait: 2 * time.Hour, After: "move",
		MoveTo: filepath.Join(dir, "done", "rg"), Line: 30}
	if !reflect.DeepEqual(*f, wantF) {
		t.Errorf("folder 0 = %+v\nwant %+v", *f, wantF)
	}
	if f := cfg.Folders[1]; f.Path != filepath.Join(dir, "other") || f.After != "delete" || f.MoveTo != "" || f.Line != 39 {
		t.Errorf("folder 1 = %+v", *f)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"LEVEL": "warn", "TYPE": "gcore", "KEY": "the key", "DESC": "d", "N": "4", "P": "7",
		"EP": "https://tus.example.com/files/", "TOK": "tok", "EXT": "mkv", "SETTLE": "2s",
		"REC": "false", "EMPTY": "",
	}
	cfg, dir := mustLoad(t, `log:
  level: ${LEVEL}
providers:
  gc:
    type: ${TYPE}
    api_key: ${KEY}
    description: "price: $$5, ${DESC}${EMPTY}, $HOME, a$b, end$"
    concurrency: ${N}
    priority: ${P}
  own:
    type: tus
    endpoint: ${EP}
    headers:
      Authorization: Bearer ${TOK}
folders:
  - path: ./in/../in${EMPTY}
    provider: gc
    include: ["*.${EXT}"]
    settle: ${SETTLE}
    recursive: ${REC}
  - path: other
    provider: own
`, env)
	if cfg.Log.Level != "warn" {
		t.Errorf("level = %q", cfg.Log.Level)
	}
	gc := cfg.Providers["gc"]
	if gc.Concurrency != 4 {
		t.Errorf("concurrency = %d", gc.Concurrency)
	}
	want := gcoreOpts{APIKey: "the key", Wait: "uploaded", Description: "price: $5, d, $HOME, a$b, end$", Priority: 7}
	if o := gc.Options.(*gcoreOpts); *o != want {
		t.Errorf("gc options = %+v, want %+v", *o, want)
	}
	own := cfg.Providers["own"]
	if own.Endpoint != env["EP"] || own.Options.(*tusOpts).Headers["Authorization"] != "Bearer tok" {
		t.Errorf("own = %+v %+v", own, own.Options)
	}
	f := cfg.Folders[0]
	if f.Path != filepath.Join(dir, "in") || !reflect.DeepEqual(f.Include, []string{"*.mkv"}) || f.Settle != 2*time.Second || f.Recursive {
		t.Errorf("folder = %+v", *f)
	}
}

func TestEnvDefaultsToProcessEnvironment(t *testing.T) {
	t.Setenv("CHUTE_TEST_KEY", "from-env")
	_, path := testDir(t, strings.Replace(base, "api_key: k", "api_key: ${CHUTE_TEST_KEY}", 1))
	cfg, err := Load(path, Options{Types: testTypes})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Providers["gc"].Options.(*gcoreOpts).APIKey; got != "from-env" {
		t.Errorf("api_key = %q", got)
	}
}

func TestSecretFile(t *testing.T) {
	t.Parallel()
	text := `providers:
  gc:
    type: gcore
    api_key_file: secrets/gc.key
  xv:
    type: xvid
    client_id: id
    client_secret_file: ${SECRETS}/xv.key
    pipeline_id: p
folders:
  - path: in
    provider: gc
`
	dir, path := testDir(t, text)
	writeFile(t, filepath.Join(dir, "secrets", "gc.key"), "s3cret \r\n\n")
	abs := t.TempDir()
	writeFile(t, filepath.Join(abs, "xv.key"), "  inner space kept\t\n")
	cfg, err := Load(path, Options{Types: testTypes, Getenv: envOf(map[string]string{"SECRETS": abs})})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Providers["gc"].Options.(*gcoreOpts).APIKey; got != "s3cret" {
		t.Errorf("api_key = %q", got)
	}
	if got := cfg.Providers["xv"].Options.(*xvidOpts).ClientSecret; got != "  inner space kept" {
		t.Errorf("client_secret = %q", got)
	}
}

func TestSecretsNeverInProblems(t *testing.T) {
	t.Parallel()
	text := `providers:
  gc:
    type: gcore
    api_key_file: key.txt
    wait: soon
  rg:
    type: redgifs
    token: [TOPSECRET-LIST]
  ug:
    type: uploadgig
    user: u
    pass: "TOPSECRET-LITERAL${"
  u2:
    type: uploadgig
    user: u
    pass: "TOPSECRET-VAR${NOPE}"
  xv:
    type: xvid
    client_id: id
    client_secret:
      TOPSECRET-MAP: 1
    pipeline_id: p
folders:
  - path: in
    provider: gc
    settle: 3
`
	dir, path := testDir(t, text)
	writeFile(t, filepath.Join(dir, "key.txt"), "TOPSECRET-FILE\n")
	_, err := Load(path, Options{Types: testTypes, Getenv: envOf(nil)})
	ps := problemsOf(t, err)
	checkProblems(t, ps, []want{
		{"providers.gc.wait", 5, "must be uploaded"},
		{"providers.rg.token", 8, "not shown: it is a secret"},
		{"providers.ug.pass", 12, "unterminated ${"},
		{"providers.u2.pass", 16, "environment variable NOPE is not set"},
		{"providers.xv.client_secret", 21, "not shown: it is a secret"},
		{"folders[0].settle", 26, "bad duration"},
	})
	if msg := err.Error(); strings.Contains(msg, "TOPSECRET") {
		t.Errorf("a secret leaked into the problems:\n%s", msg)
	}
}

func TestMergeKeysAndAnchors(t *testing.T) {
	t.Parallel()
	cfg, dir := mustLoad(t, `providers:
  gc: &gc
    type: gcore
    api_key: k
  gd:
    <<: *gc
    description: copy
folders:
  - &common
    path: in
    provider: gc
    exclude: &ex ["*.part"]
    settle: 10s
  - <<: *common
    path: other
    provider: gd
    include: *ex
`, nil)
	if o := cfg.Providers["gd"].Options.(*gcoreOpts); o.APIKey != "k" || o.Description != "copy" {
		t.Errorf("gd options = %+v", o)
	}
	f := cfg.Folders[1]
	if f.Path != filepath.Join(dir, "other") || f.Provider != "gd" || f.Settle != 10*time.Second ||
		!reflect.DeepEqual(f.Exclude, []string{"*.part"}) || !reflect.DeepEqual(f.Include, []string{"*.part"}) {
		t.Errorf("merged folder = %+v", *f)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), Options{Types: testTypes})
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
	var ps Problems
	if errors.As(err, &ps) {
		t.Errorf("a missing file is not Problems: %v", err)
	}
}

func TestProblemFormat(t *testing.T) {
	t.Parallel()
	ps := Problems{
		{Key: "providers.gc.api_key", Line: 12, Msg: "required"},
		{Key: "folders", Msg: "at least one folder is required"},
		{Line: 3, Msg: "invalid YAML: x"},
	}
	want := "line 12: providers.gc.api_key: required\nfolders: at least one folder is required\nline 3: invalid YAML: x"
	if got := ps.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var err error = ps
	if err.Error() != want {
		t.Error("Problems is not usable as an error")
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	known := []string{"path", "provider", "settle", "max_wait", "move_to"}
	for _, tc := range []struct{ in, want string }{
		{"setle", "settle"},
		{"Settle", "settle"},
		{"max-wait", "max_wait"},
		{"maxwait", "max_wait"},
		{"moveto", "move_to"},
		{"pth", "path"},
		{"providr", "provider"},
		{"foo", ""},
		{"x", ""},
		{"paths_to", ""},
	} {
		if got := suggest(tc.in, known); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStatePath(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name, goos string
		root       bool
		env        map[string]string
		home, want string
	}{
		{"linux root", "linux", true, map[string]string{"XDG_STATE_HOME": "/x"}, "/root", "/var/lib/chute/state.db"},
		{"linux user xdg", "linux", false, map[string]string{"XDG_STATE_HOME": "/xdg"}, "/home/u", filepath.Join("/xdg", "chute", "state.db")},
		{"linux user relative xdg ignored", "linux", false, map[string]string{"XDG_STATE_HOME": "rel"}, "/home/u", filepath.Join("/home/u", ".local", "state", "chute", "state.db")},
		{"linux user", "linux", false, nil, "/home/u", filepath.Join("/home/u", ".local", "state", "chute", "state.db")},
		{"linux user no home", "linux", false, nil, "", "/var/lib/chute/state.db"},
		{"freebsd user", "freebsd", false, nil, "/home/u", filepath.Join("/home/u", ".local", "state", "chute", "state.db")},
		{"darwin", "darwin", false, nil, "/Users/u", filepath.Join("/Users/u", "Library", "Application Support", "chute", "state.db")},
		{"windows", "windows", false, map[string]string{"LOCALAPPDATA": `C:\Users\u\AppData\Local`}, "", filepath.Join(`C:\Users\u\AppData\Local`, "chute", "state.db")},
	} {
		if got := statePath(tc.goos, tc.root, env(tc.env), tc.home); got != tc.want {
			t.Errorf("%s: statePath = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := DefaultStatePath(); !filepath.IsAbs(got) || filepath.Base(got) != "state.db" {
		t.Errorf("DefaultStatePath() = %q", got)
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "CHUTE_CONFIG" {
				return v
			}
			return ""
		}
	}
	if got := Locate("/flag.yaml", env("/env.yaml"), false); got != "/flag.yaml" {
		t.Errorf("flag: %q", got)
	}
	if got := Locate("", env("/env.yaml"), true); got != "/env.yaml" {
		t.Errorf("env: %q", got)
	}
	if got, want := Locate("", env(""), false), DefaultConfigPath(false); got != want {
		t.Errorf("default: %q, want %q", got, want)
	}
	if got, want := Locate("", env(""), true), DefaultConfigPath(true); got != want {
		t.Errorf("default user: %q, want %q", got, want)
	}
	if runtime.GOOS != "windows" && DefaultConfigPath(false) != "/etc/chute/chute.yaml" {
		t.Errorf("DefaultConfigPath(false) = %q", DefaultConfigPath(false))
	}
	if dir, err := os.UserConfigDir(); err == nil && DefaultConfigPath(true) != filepath.Join(dir, "chute", "chute.yaml") {
		t.Errorf("DefaultConfigPath(true) = %q", DefaultConfigPath(true))
	}
	if got := configPath("windows", "", func(string) string { return `D:\PD` }); got != filepath.Join(`D:\PD`, "chute", "chute.yaml") {
		t.Errorf("windows system config = %q", got)
	}
}

// TestExamples loads every example config, with the variables they use set.
func TestExamples(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob(filepath.Join("examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"full.yaml", "gcore.yaml", "redgifs.yaml", "tus.yaml", "uploadgig.yaml", "xvid.yaml"} {
		if !contains(baseNames(paths), want) {
			t.Errorf("examples/%s is missing", want)
		}
	}
	env := map[string]string{
		"REDGIFS_TOKEN":      "rg-token",
		"GCORE_API_KEY":      "gc-key",
		"UPLOADGIG_PASS":     "ug-pass",
		"XVID_CLIENT_ID":     "xv-id",
		"XVID_CLIENT_SECRET": "xv-secret",
	}
	types := map[string]string{}
	for _, path := range paths {
		cfg, err := Load(path, Options{Types: testTypes, Getenv: envOf(env), SkipFilesystem: true})
		if err != nil {
			t.Errorf("%s:\n%v", path, err)
			continue
		}
		for name, p := range cfg.Providers {
			types[p.Type] = name
		}
	}
	for _, typ := range []string{"redgifs", "gcore", "uploadgig", "xvid", "tus"} {
		if types[typ] == "" {
			t.Errorf("no example uses provider type %s", typ)
		}
	}
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func TestFullExampleMatchesSpec(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"REDGIFS_TOKEN": "rg", "GCORE_API_KEY": "gc", "UPLOADGIG_PASS": "ug",
		"XVID_CLIENT_ID": "xi", "XVID_CLIENT_SECRET": "xs",
	}
	cfg, err := Load(filepath.Join("examples", "full.yaml"), Options{Types: testTypes, Getenv: envOf(env), SkipFilesystem: true})
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Providers["rg"].Options.(*redgifsOpts); !reflect.DeepEqual(*o, redgifsOpts{Token: "rg", Tags: []string{"example"}, KeepAudio: true}) {
		t.Errorf("rg = %+v", o)
	}
	if o := cfg.Providers["xv"].Options.(*xvidOpts); *o != (xvidOpts{ClientID: "xi", ClientSecret: "xs", PipelineID: "53a1ac4914eaa8ffa4fce91b"}) {
		t.Errorf("xv = %+v", o)
	}
	if cfg.Providers["own"].Endpoint != "https://uploads.example.com/files/" || cfg.Listen != "127.0.0.1:9477" {
		t.Errorf("own = %+v, listen %q", cfg.Providers["own"], cfg.Listen)
	}
	if f := cfg.Folders[0]; f.Path != filepath.FromSlash("/srv/drop/redgifs") || f.MoveTo != filepath.FromSlash("/srv/done/redgifs") {
		t.Errorf("folder 0 = %+v", f)
	}
}

func TestListenTokenFile(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := mustLoad(t, base+"listen: '[::]:9477'\nlisten_token_file: "+tokenFile+"\n", nil)
	if cfg.ListenToken != "s3cret-token-0123456789" || cfg.Listen != "[::]:9477" {
		t.Errorf("ListenToken = %q, Listen = %q", cfg.ListenToken, cfg.Listen)
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, ":1": false, "0.0.0.0:1": false, "192.168.1.2:1": false, "example.com:1": false} {
		if got := LoopbackListen(addr); got != want {
			t.Errorf("LoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}
