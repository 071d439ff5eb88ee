// Package chaossim runs simulated fault campaigns: many swarm seeds of the simnet
// simulator in parallel, each checked, with a progress bar, a summary table and an HTML
// report; a failing seed is shrunk to its fewest faults and transfers and saved as a
// case that replays. It is the library behind "chaos sim" (cmd/chaos only parses the
// flags into Options); chaosreal is its counterpart against real processes.
//
//	Options ──▶ Campaign ──▶ simnet.Run per seed (Profile.Knobs) ──▶ summary, report.html
//	                              │ a seed fails
//	                              ▼
//	                      Shrink ──▶ ShrunkCase (.shrunk.json) ──▶ Replay
package chaossim
