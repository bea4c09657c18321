// Calls a known-vulnerable function on purpose: the proof that `make verify`'s govulncheck scan
// finds reachable vulnerabilities in the local database (vuln_test.go). Never imported by the
// operator; golang.org/x/text stays below its fix (v0.3.7) deliberately.
module github.com/servicegraph/servicegraph-operator/test/vuln

go 1.26.0

require golang.org/x/text v0.3.6
