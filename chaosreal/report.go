package chaosreal

// WriteReport writes the campaign's HTML report into dir and returns its path.
func WriteReport(dir string, r *Result) (string, error) { return "", nil }
