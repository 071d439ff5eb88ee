package sqlpart

// ParkedSessionID is the database session holding gid's prepared transaction, for
// tests that kill it.
func (p *Participant) ParkedSessionID(gid string) (int64, bool) {
	p.parkMu.Lock()
	defer p.parkMu.Unlock()
	pc, ok := p.parked[gid]
	return pc.sessionID, ok
}
