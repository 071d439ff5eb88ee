package bench

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/dtc-project/dtc/participant"
)

// noopParticipant is ModeNoop's participant: protocolNoop, plus the batch endpoint and
// its header, so that dtc talks to it as it talks to participants built on the
// participant package (which offer batches), with no log and no state behind it. Unless
// Options.Passive, it also says that it asks about transactions in doubt
// (participant.HeaderInDoubt), as a participant running a Resolver does: true of it,
// since it holds nothing that could be in doubt.
func noopParticipant(o Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !o.Passive {
			w.Header()[participant.HeaderInDoubt] = noopInDoubtHeader
		}
		noopAnswer(w, r)
	}
}

var noopInDoubtHeader = []string{participant.InDoubtAsk}

func noopAnswer(w http.ResponseWriter, r *http.Request) {
	w.Header()[participant.HeaderBatchMax] = noopBatchHeader
	if endpointOf(r) != participant.EndpointBatch {
		protocolNoop(w, r)
		return
	}
	var req participant.BatchRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&req); err != nil ||
		len(req.Ops) == 0 || len(req.Ops) > participant.DefaultBatchMaxOps {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	resp := participant.BatchResponse{Results: make([]participant.BatchResult, len(req.Ops))}
	for i, op := range req.Ops {
		resp.Results[i].State = participant.StateAborted
		if op.Op == participant.BatchOpCommit {
			resp.Results[i].State = participant.StateCommitted
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&resp)
}

// noopBatchHeader offers the batch size of participant.NewHandler's default.
var noopBatchHeader = []string{strconv.Itoa(participant.DefaultBatchMaxOps)}
