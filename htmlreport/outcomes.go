package htmlreport

import "github.com/dtc-project/dtc/checker"

// OutcomeNames are the series of a chart of transaction outcomes, in the order every
// report plots them, and OutcomeColors their colors: the simulated and the real
// campaigns' reports read alike.
var (
	OutcomeNames  = []string{string(checker.Committed), string(checker.Aborted), string(checker.Unknown)}
	OutcomeColors = []string{"#2a9d5c", "#edae49", "#d1495b"}
)
