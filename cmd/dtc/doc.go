// Command dtc is the distributed transaction coordinator: the daemon and its CLI.
//
//	dtc serve [--listen 127.0.0.1:7070] [--data-dir ./data] [...]   run the coordinator
//	dtc submit URL[=JSON]... [--id ID] [--timeout D]                  run one transaction
//	dtc get ID                                                        show one transaction
//	dtc list [--state STATE]                                          list transactions
//	dtc log dump [--data-dir DIR]                                     print the log as JSON lines
//	dtc token --role ROLE --name NAME [--append FILE]                 make an API client's token
//	dtc version
//
// Every flag may also come from an environment variable: DTC_ and the flag's name in
// capitals with '-' turned into '_' (--data-dir is DTC_DATA_DIR; for submit, get and
// list only --coordinator, --token, --token-file, --ca-cert, --cert and --key, as
// DTC_COORDINATOR, DTC_TOKEN, …; none for token). The command line wins over the
// environment; a malformed value in the environment is an error naming the variable.
//
// Exit codes: 0 success (submit: committed); 1 the negative answer (submit: aborted,
// get: not found, serve and log dump: failure); 2 usage or communication errors.
//
// serve is a thin shell over package httpnet: it turns flags into httpnet.Options,
// listens, and runs apiserver.Serve until SIGTERM or SIGINT, when it shuts down
// gracefully (see httpnet's documentation for what is fatal: an fsync error exits 1).
// With --tokens it authenticates API clients (apiserver.Auth, the file read again on
// SIGHUP); without, it serves only on loopback unless --insecure. README "Security"
// has the threat model.
package main
