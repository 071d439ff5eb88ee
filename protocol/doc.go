// Package protocol is the participant protocol (DESIGN §3) in one place, free of IO: the
// words (a participant's State, a prepare's Vote), the messages that go between the
// coordinator and a participant and their JSON, the endpoints a participant's prepare
// URL names, how an answer is read (Interpret, ParseBatchAnswer) and how a participant
// left in doubt reads its coordinator's answer (InDoubtVerdict).
//
//	coordinator.Message ──Append*Request──▶ bytes ──Parse*Request──▶ participant core
//	        ▲                                                               │
//	coordinator.Reply ◀──Interpret/ParseBatchAnswer── bytes ◀──Append*Response
//
// Its users: httpnet/transport (the coordinator's HTTP transport), participant (the
// handler and the resolver) and simnet (the simulator, which carries these very bytes
// across its simulated network). None of them encodes or reads a protocol message by itself.
//
// The encoders write exactly what json.Marshal writes for the message types (held to
// that by the tests); the fast parsers read exactly the bodies these encoders write and
// leave every other body to DecodeStrict, so that what is accepted does not depend on
// which path read it.
//
// The state and vote words are the coordinator's own types (coordinator.PState,
// coordinator.Vote): the engine imports no package of this module (DESIGN §1), so this
// package names its types rather than the other way round. There is one state type and
// one vote type in the module.
package protocol
