package uploader

import (
	"encoding/json"
	"sort"
	"strings"
)

// JSONErrorText reads what a JSON error answer says, under the first of keys that holds
// something: a string, a list of them, or an object of those by field, rendered as
// "field: message; field: message" (Gcore's {"errors":{"name":["can't be blank"]}} reads
// "name: can't be blank"; RedGIFs' {"error":{"code":"X","message":"Y"}} reads
// "code: X; message: Y"). It returns "" when body is not JSON or no key says anything.
func JSONErrorText(body []byte, keys ...string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, k := range keys {
		if raw, ok := m[k]; ok {
			if msg := flattenJSON("", raw); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// flattenJSON renders a JSON error value under prefix.
func flattenJSON(prefix string, raw json.RawMessage) string {
	label := func(s string) string {
		if prefix == "" {
			return s
		}
		return prefix + ": " + s
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return ""
		}
		return label(s)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var parts []string
		for _, item := range list {
			if f := flattenJSON("", item); f != "" {
				parts = append(parts, f)
			}
		}
		if len(parts) == 0 {
			return ""
		}
		return label(strings.Join(parts, ", "))
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			if f := flattenJSON(name, obj[k]); f != "" {
				parts = append(parts, f)
			}
		}
		return strings.Join(parts, "; ")
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return label(n.String())
	}
	return ""
}
