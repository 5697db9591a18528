//go:build !linux

package uploadgig_test

// childrenPeakRSS is not measured here.
func childrenPeakRSS() int64 { return 0 }
