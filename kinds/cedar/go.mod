module github.com/stopline/stopline/kinds/cedar

go 1.26.0

require (
	github.com/cedar-policy/cedar-go v1.9.2
	github.com/stopline/stopline v0.0.0-00010101000000-000000000000
)

require (
	github.com/go-json-experiment/json v1.27.2 // indirect
	golang.org/x/exp v0.0.0-20240823005443-9b4947da3948 // indirect
	golang.org/x/mod v0.43.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)

replace github.com/stopline/stopline => ../..
