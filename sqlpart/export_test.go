package sqlpart

import "context"

// ParkedSessionID is the database session holding gid's prepared transaction, for
// tests that kill it.
func (p *Participant) ParkedSessionID(gid string) (int64, bool) {
	p.parkMu.Lock()
	defer p.parkMu.Unlock()
	pc, ok := p.parked[gid]
	return pc.sessionID, ok
}

// Blockers is what the participant finds blocking PostgreSQL backend pid: the dtc
// transactions of coordinator it waits for, and the lock it waits for.
func (p *Participant) Blockers(ctx context.Context, pid uint32, coordinator string) ([]string, string, error) {
	return p.blockers(ctx, pid, "", coordinator)
}
