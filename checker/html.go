package checker

import (
	"bytes"
	"fmt"
	"html"
	"os"

	"github.com/anishathalye/porcupine"
)

// WriteHTML writes porcupine's visualization of h to path: a self-contained HTML file
// with one partition per transaction, notes as annotations, and rep's verdict at the top.
// rep may be nil (h is then checked without liveness). Porcupine is run again on h so
// that the picture always shows h, whatever history rep came from.
func WriteHTML(path string, h History, rep *Report) error {
	timeout := DefaultPorcupineTimeout
	if rep == nil {
		rep = Check(h, Options{})
	} else if rep.PorcupineTimeout > 0 {
		timeout = rep.PorcupineTimeout
	}
	model := Model()
	_, info := porcupine.CheckOperationsVerbose(model, checkedOperations(h), timeout)
	notes := make([]porcupine.Annotation, 0, len(h.Notes))
	for _, n := range h.Notes {
		notes = append(notes, porcupine.Annotation{Tag: "notes", Start: n.At, End: n.At, Description: n.What, Details: "t=" + fmtTime(n.At) + ": " + n.What})
	}
	info.AddAnnotations(notes)
	var buf bytes.Buffer
	if err := porcupine.Visualize(model, info, &buf); err != nil {
		return fmt.Errorf("checker: visualize: %w", err)
	}
	page := buf.Bytes()
	verdict := "FAIL"
	if rep.OK() {
		verdict = "OK"
	}
	page = bytes.Replace(page, []byte("<title>Porcupine</title>"), fmt.Appendf(nil, "<title>dtc check: %s</title>", verdict), 1)
	summary := fmt.Sprintf("\n    <pre id=\"dtc-report\" style=\"margin: 10px; font-size: 13px\">dtc check: %s (%d txns, %d client ops, %d model ops, porcupine %s)\n%s</pre>",
		verdict, rep.Txns, rep.Ops, rep.ModelOps, rep.Porcupine, html.EscapeString(rep.String()))
	page = bytes.Replace(page, []byte("<body>"), []byte("<body>"+summary), 1)
	if err := os.WriteFile(path, page, 0o644); err != nil {
		return fmt.Errorf("checker: %w", err)
	}
	return nil
}
