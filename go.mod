module github.com/chute-dev/chute

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.9.0
	github.com/tus/tusd/v2 v2.10.1
	go.etcd.io/bbolt v1.4.3
	go.uber.org/goleak v1.3.0
	golang.org/x/exp v0.0.0-20260611194520-c48552f49976
	golang.org/x/sys v0.47.0
	golang.org/x/time v0.15.0
	gopkg.in/yaml.v3 v3.0.1
)

require github.com/kr/text v0.2.0 // indirect
