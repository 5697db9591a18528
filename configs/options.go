package configs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxSecretFile is the largest secret file the loader reads: a credential is short, a
// bigger file is most likely the wrong one.
const maxSecretFile = 64 << 10

// optField is one settable field of a provider's options struct.
type optField struct {
	name     string // the YAML key
	v        reflect.Value
	required bool
	secret   bool
	// secretValues marks a map whose values are secrets (`chute:"secret_values"`: tus
	// headers); the map itself is an ordinary key.
	secretValues bool
}

// optFields lists the fields of struct value v by their YAML key: the `yaml` tag's name, or
// the lower-cased field name as yaml.v3 does. Fields tagged `yaml:",inline"` are flattened.
func optFields(v reflect.Value) []optField {
	var out []optField
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		if contains(strings.Split(flags, ","), "inline") && sf.Type.Kind() == reflect.Struct {
			out = append(out, optFields(v.Field(i))...)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		f := optField{name: name, v: v.Field(i)}
		for _, c := range strings.Split(sf.Tag.Get("chute"), ",") {
			switch strings.TrimSpace(c) {
			case "required":
				f.required = true
			case "secret":
				f.secret = true
			case "secret_values":
				f.secretValues = true
			}
		}
		out = append(out, f)
	}
	return out
}

// options fills a new options struct of a provider type from the provider's keys other
// than the common ones (type, endpoint, concurrency, max_attempts).
func (l *loader) options(info TypeInfo, path string, line int, pairs []pair) any {
	if info.NewOptions == nil {
		l.unknown(pairs, path, providerKeys())
		return nil
	}
	opts := info.NewOptions()
	rv := reflect.ValueOf(opts)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		l.add(path, line, "internal error: the options of this provider type are %T, not a pointer to a struct", opts)
		return opts
	}
	fields := optFields(rv.Elem())
	known := providerKeys()
	byName := make(map[string]*optField, len(fields))
	for i := range fields {
		f := &fields[i]
		byName[f.name] = f
		known = append(known, f.name)
		if f.secret {
			known = append(known, f.name+"_file")
		}
	}

	given := make(map[string]*pair) // field name -> the key that set it
	bad := make(map[string]bool)    // field names already reported
	for i := range pairs {
		p := &pairs[i]
		if f, ok := byName[p.name]; ok {
			if prev := given[f.name]; prev != nil {
				l.add(join(path, prev.name), prev.key.Line, "give either %s or %s_file, not both", f.name, f.name)
				bad[f.name] = true
				continue
			}
			given[f.name] = p
			if !l.setField(f, p.val, join(path, p.name)) {
				bad[f.name] = true
			}
			continue
		}
		if base, ok := strings.CutSuffix(p.name, "_file"); ok {
			if f, ok := byName[base]; ok && f.secret {
				if prev := given[f.name]; prev != nil {
					l.add(join(path, p.name), p.key.Line, "give either %s or %s_file, not both", f.name, f.name)
					bad[f.name] = true
					continue
				}
				given[f.name] = p
				if !l.secretFile(f, p, join(path, p.name)) {
					bad[f.name] = true
				}
				continue
			}
		}
		l.unknownKey(*p, path, known)
	}

	for i := range fields {
		f := &fields[i]
		if !f.required || bad[f.name] || !isZero(f.v) {
			continue
		}
		msg := "required"
		if f.secret {
			msg = fmt.Sprintf("required (or %s_file)", f.name)
		}
		fline := line
		if p := given[f.name]; p != nil {
			fline = p.key.Line
		}
		l.add(join(path, f.name), fline, "%s", msg)
	}

	if v, ok := opts.(Validator); ok {
		reported := make(map[string]bool)
		for _, p := range l.problems {
			reported[p.Key] = true
		}
		for _, fe := range v.Validate() {
			key := path
			fline := line
			if fe.Key != "" {
				key = join(path, fe.Key)
				first := fe.Key
				if i := strings.IndexAny(first, ".["); i >= 0 {
					first = first[:i]
				}
				if p := given[first]; p != nil {
					fline = p.key.Line
				} else {
					fline = keyLine(pairs, first, line)
				}
			}
			if reported[key] {
				continue
			}
			l.add(key, fline, "%s", fe.Msg)
		}
	}
	return opts
}

// Secrets returns the secret values of a filled options struct (a pointer to it): its fields
// tagged `chute:"secret"` and the values of its maps tagged `chute:"secret_values"`, as the
// loader reads those tags. Empty values are left out.
func Secrets(opts any) []string {
	rv := reflect.ValueOf(opts)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for _, f := range optFields(rv.Elem()) {
		switch {
		case f.secret && f.v.Kind() == reflect.String && f.v.String() != "":
			out = append(out, f.v.String())
		case f.secretValues && f.v.Kind() == reflect.Map && f.v.Type().Elem().Kind() == reflect.String:
			for _, k := range f.v.MapKeys() {
				if v := f.v.MapIndex(k).String(); v != "" {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// isZero reports whether a field counts as not set: its zero value, or an empty list or map.
func isZero(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

// setField decodes value node n into field f.
func (l *loader) setField(f *optField, n *yaml.Node, key string) bool {
	if f.v.Type() == reflect.TypeFor[time.Duration]() {
		d, ok := l.durationValue(n, key, time.Duration(f.v.Int()))
		if ok {
			f.v.SetInt(int64(d))
		}
		return ok
	}
	e, ok := l.expandNode(n, key)
	if !ok {
		return false
	}
	if f.v.Kind() == reflect.Slice && f.v.Type().Elem().Kind() != reflect.Uint8 && e.Kind == yaml.ScalarNode && !isNull(e) {
		// A single value where a list is expected is a list of one.
		e = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: e.Line, Column: e.Column, Content: []*yaml.Node{e}}
	}
	err := e.Decode(f.v.Addr().Interface())
	if err == nil {
		return true
	}
	line := e.Line
	if f.secret {
		l.add(key, line, "not a valid value for this key (not shown: it is a secret)")
		return false
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			mline, msg := splitLine(msg)
			if mline == 0 {
				mline = line
			}
			l.add(key, mline, "%s", msg)
		}
		return false
	}
	l.add(key, line, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	return false
}

// secretFile sets secret field f from the file named by p (the `<name>_file` key). The
// file's content never appears in a problem.
func (l *loader) secretFile(f *optField, p *pair, key string) bool {
	line := p.key.Line
	name, ok := l.scalar(p.val, key)
	if !ok {
		return false
	}
	if name == "" {
		l.add(key, line, "must be the path of a file holding %s", f.name)
		return false
	}
	path, ok := l.path(name, key, line)
	if !ok {
		return false
	}
	content, err := readSecret(path)
	if err != nil {
		l.add(key, line, "cannot read secret file: %v", err)
		return false
	}
	if content == "" {
		l.add(key, line, "secret file %s is empty", path)
		return false
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: content}
	if err := n.Decode(f.v.Addr().Interface()); err != nil {
		l.add(key, line, "the content of %s is not a valid value for %s (not shown: it is a secret)", path, f.name)
		return false
	}
	return true
}

// readSecret reads a secret file, trimming trailing newlines and spaces.
func readSecret(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s is a directory", path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d KiB: is it the right file?", path, maxSecretFile>>10)
	}
	return strings.TrimRight(string(data), "\r\n\t "), nil
}

// splitLine splits "line 12: message" (as yaml.v3 words its errors) into 12 and "message";
// a message without a line gives 0.
func splitLine(msg string) (int, string) {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	if !ok {
		return 0, msg
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0, msg
	}
	return n, text
}
