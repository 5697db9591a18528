package uploadertest

import "time"

// ExpireAll makes every credential in m expired as of a second ago: an emulator's
// "expire every token issued so far" knob. setExpiry stores that moment in one value (the
// credential types differ from one emulator to the next). The caller holds its own lock.
func ExpireAll[K comparable, V any](m map[K]V, setExpiry func(v *V, at time.Time)) {
	past := time.Now().Add(-time.Second)
	for k, v := range m {
		setExpiry(&v, past)
		m[k] = v
	}
}
