package chaosreal

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"path"
	"slices"
	"sync"

	"github.com/dtc-project/dtc/coordinator"
	"github.com/dtc-project/dtc/protocol"
)

// The tap reads the HTTP exchanges a Proxy forwards between dtc and a participant:
// which transactions the participant was asked to prepare, commit or roll back, and
// what it answered. It is the real-process harness's witness of the protocol: the
// checker gets votes, phase-2 messages and acknowledgements with the time they passed
// the proxy, as the simulator records them from inside.

// TapEvent is one request, or one answer, seen by a tap. A batch request (POST …/batch,
// many transactions' phase 2 in one request) is one event per op, with the op as Call,
// and so is its answer: the checker sees the same events as for single requests.
type TapEvent struct {
	Participant string
	Call        string // "prepare", "commit", "rollback", "status", or another path element
	TxnID       string
	Answer      bool   // false: the request; true: its answer
	Status      int    // answers: the HTTP status
	Vote        string // prepare answers: ACK or NACK
	State       string // commit, rollback and status answers: the participant's state
	At          int64  // when the bytes that began it passed the proxy (wall-clock ns)
}

// chunk is bytes forwarded by a proxy, with the time they were read.
type chunk struct {
	data []byte
	at   int64
}

// tapChunksMax bounds the chunks waiting for a parser: past it, the proxy waits.
const tapChunksMax = 256

// tapConn parses one proxied connection: requests one way, answers the other, matched
// in order (Go's HTTP client does not pipeline).
type tapConn struct {
	participant string
	sink        func(TapEvent)
	reqs, resps chan chunk
	pending     chan tapRequest
	closeOnce   sync.Once
	wg          sync.WaitGroup
}

func newTapConn(participant string, sink func(TapEvent)) *tapConn {
	t := &tapConn{
		participant: participant,
		sink:        sink,
		reqs:        make(chan chunk, tapChunksMax),
		resps:       make(chan chunk, tapChunksMax),
		pending:     make(chan tapRequest, 64),
	}
	t.wg.Add(2)
	go t.readRequests()
	go t.readAnswers()
	return t
}

// feed hands a copy of forwarded bytes to the parser of their direction.
func (t *tapConn) feed(toServer bool, data []byte, at int64) {
	c := chunk{data: slices.Clone(data), at: at}
	if toServer {
		t.reqs <- c
	} else {
		t.resps <- c
	}
}

// close ends both streams and waits for the parsers.
func (t *tapConn) close() {
	t.closeOnce.Do(func() {
		close(t.reqs)
		close(t.resps)
	})
	t.wg.Wait()
}

// bodyMaxBytes bounds the body a tap reads of one message.
const tapBodyMaxBytes = 1 << 20

func (t *tapConn) readRequests() {
	defer t.wg.Done()
	defer close(t.pending)
	cr := &chunkReader{ch: t.reqs}
	defer cr.drain()
	br := bufio.NewReader(cr)
	for {
		cr.markStart(br)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, tapBodyMaxBytes))
		if err != nil {
			return
		}
		tr := t.parseRequest(req, body, cr.start)
		for _, ev := range tr.evs {
			t.sink(ev)
		}
		t.pending <- tr
	}
}

// tapRequest is one request's events, waiting for its answer: one event, or one per op
// of a batch.
type tapRequest struct {
	evs   []TapEvent
	batch bool
}

func (t *tapConn) parseRequest(req *http.Request, body []byte, at int64) tapRequest {
	ev := TapEvent{Participant: t.participant, Call: path.Base(req.URL.Path), At: at}
	switch {
	case req.Method == http.MethodGet:
		ev.TxnID = protocol.StatusTxnID(req.URL.RawQuery)
	case ev.Call == protocol.EndpointBatch:
		ops := readBatchOps(body)
		if len(ops) == 0 {
			return tapRequest{evs: []TapEvent{ev}} // no transaction: the checker ignores it
		}
		tr := tapRequest{evs: make([]TapEvent, len(ops)), batch: true}
		for i, op := range ops {
			tr.evs[i] = TapEvent{Participant: t.participant, Call: op.Op, TxnID: op.TxnID, At: at}
		}
		return tr
	default:
		ev.TxnID = readTxnID(body)
	}
	return tapRequest{evs: []TapEvent{ev}}
}

// readBatchOps reads the ops of a batch body, as the participant's fast parser reads the
// ones the coordinator writes, any other leniently (unknown fields ignored): the tap
// reports what was sent, and the participant judges it. nil if none can be read.
func readBatchOps(body []byte) []protocol.BatchOp {
	if ops, ok := protocol.ParseBatchRequest(body, nil, protocol.BatchOpsMax); ok {
		return ops
	}
	var req protocol.BatchRequest
	if protocol.Decode(bytes.NewReader(body), &req, false) != nil {
		return nil
	}
	return req.Ops
}

// readTxnID reads the txn_id of a prepare, commit or rollback body, leniently as
// readBatchOps; "" if none can be read.
func readTxnID(body []byte) string {
	if id, ok := protocol.ParseTxnRequest(body); ok {
		return id
	}
	if id, _, _, _, ok := protocol.ParsePrepareRequest(body); ok {
		return string(id)
	}
	var req protocol.TxnRequest
	_ = protocol.Decode(bytes.NewReader(body), &req, false)
	return req.TxnID
}

func (t *tapConn) readAnswers() {
	defer t.wg.Done()
	cr := &chunkReader{ch: t.resps}
	defer cr.drain()
	defer func() {
		for range t.pending { // let the request parser finish
		}
	}()
	br := bufio.NewReader(cr)
	for {
		cr.markStart(br)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, tapBodyMaxBytes))
		if err != nil {
			return
		}
		tr, ok := <-t.pending
		if !ok {
			return
		}
		for _, ev := range answerEvents(tr, resp.StatusCode, body, cr.start) {
			t.sink(ev)
		}
	}
}

// tapKinds are the engine's kinds of the single calls, by endpoint.
var tapKinds = map[string]coordinator.MsgKind{
	protocol.EndpointPrepare:  coordinator.MsgPrepare,
	protocol.EndpointCommit:   coordinator.MsgCommit,
	protocol.EndpointRollback: coordinator.MsgRollback,
	protocol.EndpointStatus:   coordinator.MsgStatus,
}

// answerEvents turns an answer into the events of its request's answers, read as the
// coordinator reads them (protocol.Interpret, protocol.ParseBatchAnswer): an answer
// the coordinator would take as no answer has no vote and no state. An op of a batch is
// answered as its single request would have been: 200 with its state, 409 with the
// state it conflicts with, or, for an op's error, 500 with no state. A batch answered
// other than 200 with one result per op answers every op with its status and no state.
func answerEvents(tr tapRequest, status int, body []byte, at int64) []TapEvent {
	evs := tr.evs
	for i := range evs {
		evs[i].Answer, evs[i].Status, evs[i].At = true, status, at
	}
	if !tr.batch {
		kind, ok := tapKinds[evs[0].Call]
		if !ok {
			return evs
		}
		r, err := protocol.Interpret(protocol.Answer{Kind: kind, Status: status, Body: body})
		if err == nil {
			evs[0].Vote, evs[0].State = string(r.Vote), string(r.State)
		}
		return evs
	}
	if status != http.StatusOK {
		return evs
	}
	replies := make([]coordinator.Reply, len(evs))
	if protocol.ParseBatchAnswer(body, replies, func(int, *protocol.ErrorBody) error { return errTapOpFailed }) != nil {
		return evs
	}
	for i, r := range replies {
		switch {
		case r.Err != nil:
			evs[i].Status = http.StatusInternalServerError
		case r.Conflict:
			evs[i].Status, evs[i].State = http.StatusConflict, string(r.State)
		default:
			evs[i].State = string(r.State)
		}
	}
	return evs
}

// errTapOpFailed marks an op of a batch answered with an error.
var errTapOpFailed = errors.New("chaosreal: the op was answered with an error")

// chunkReader reads the chunks of one direction, and tells when the message about to be
// read began: the read time of the chunk holding its first byte.
type chunkReader struct {
	ch     <-chan chunk
	cur    []byte
	curAt  int64
	lastAt int64 // the chunk the last Read took bytes from
	mark   bool  // the next message begins with the next chunk
	start  int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.cur) == 0 {
		c, ok := <-r.ch
		if !ok {
			return 0, io.EOF
		}
		r.cur, r.curAt = c.data, c.at
		if r.mark {
			r.start, r.mark = c.at, false
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.lastAt = r.curAt
	return n, nil
}

// markStart notes where the next message begins: in bytes already read (br holds some),
// or in the next chunk.
func (r *chunkReader) markStart(br *bufio.Reader) {
	switch {
	case br.Buffered() > 0:
		r.start, r.mark = r.lastAt, false
	case len(r.cur) > 0:
		r.start, r.mark = r.curAt, false
	default:
		r.mark = true
	}
}

// drain consumes the rest of the stream, so that the proxy never waits for a parser
// that gave up (on bytes that are not HTTP, say, after a reset).
func (r *chunkReader) drain() {
	for range r.ch {
	}
}
