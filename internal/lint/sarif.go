package lint

import (
	"slices"
)

// SARIF 2.1.0, as code-scanning UIs read it: the subset this linter fills in.
const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	// InformationURI is where the tool's rules are documented.
	InformationURI = "https://github.com/servicegraph/servicegraph-operator"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	ShortDescription     sarifText    `json:"shortDescription"`
	Help                 sarifText    `json:"help"`
	DefaultConfiguration sarifDefault `json:"defaultConfiguration"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifDefault struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical  `json:"physicalLocation"`
	LogicalLocations []sarifLogical `json:"logicalLocations"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

// sarifLogical names the object, which a file of many documents needs besides the line.
type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// SARIF is the report as a SARIF 2.1.0 log with one run. Every rule is listed, not only those
// that fired, so that a code-scanning UI can close alerts that are gone. uri turns a finding's
// file into the artifact URI, relative to the repository root.
func (r Report) SARIF(uri func(file string) string) ([]byte, error) {
	rules := Rules()
	driver := sarifDriver{Name: "servicegraph", InformationURI: InformationURI, Rules: make([]sarifRule, len(rules))}
	for i, rule := range rules {
		driver.Rules[i] = sarifRule{
			ID:                   rule.ID,
			ShortDescription:     sarifText{rule.Summary},
			Help:                 sarifText{rule.Hint},
			DefaultConfiguration: sarifDefault{sarifLevel(rule.Severity)},
		}
	}
	results := make([]sarifResult, len(r.Findings))
	for i, f := range r.Findings {
		results[i] = sarifResult{
			RuleID:    f.Rule,
			RuleIndex: slices.IndexFunc(rules, func(rule Rule) bool { return rule.ID == f.Rule }),
			Level:     sarifLevel(f.Severity),
			Message:   sarifText{f.Message + " (hint: " + f.Hint + ")"},
			Locations: []sarifLocation{{
				PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{uri(f.File)}, Region: region(f.Line)},
				LogicalLocations: []sarifLogical{{FullyQualifiedName: f.Kind + " " + f.Namespace + "/" + f.Name, Kind: "resource"}},
			}},
		}
	}
	return marshal(sarifLog{
		Schema:  sarifSchema,
		Version: sarifVersion,
		Runs:    []sarifRun{{Tool: sarifTool{driver}, Results: results}},
	})
}

// sarifLevel is a severity as SARIF 2.1.0 spells it (§3.27.10: none, note, warning, error). Ours are
// a subset, but the mapping is spelt out so that a new severity cannot slip into a log unmapped.
func sarifLevel(s Severity) string {
	switch s {
	case SeverityError:
		return "error"
	case SeverityWarning:
		return "warning"
	case SeverityNote:
		return "note"
	}
	panic("lint: no SARIF level for severity " + string(s))
}

// region points at a line; a file that could not be read at all has none (SARIF lines start at 1).
func region(line int) *sarifRegion {
	if line < 1 {
		return nil
	}
	return &sarifRegion{line}
}
