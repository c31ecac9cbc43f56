module github.com/imbot-dev/imbot

go 1.26.8

require (
	github.com/emiago/sipgo v1.7.3
	github.com/expr-lang/expr v1.17.8
	github.com/icholy/digest v1.2.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/text v0.44.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.24.0 // indirect
)
