package sqlpart

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
)

// On MariaDB/MySQL the session that prepared an XA transaction holds it: another
// connection can commit or roll it back only once that session is gone. Rather than
// close the session after every prepare (a new connection per transaction, and a wait
// for the server to tear the old one down before the ACK), the participant keeps it
// ("parks" it) and finishes the transaction on it in phase 2, as the databases' own
// clients do; the connection then goes back to the pool. A parked connection is only
// an optimisation: the transaction is prepared in the database whatever becomes of the
// connection (MariaDB ≥ 10.5 and MySQL ≥ 5.7.7 keep a prepared XA transaction when
// its session ends). When a parked connection fails, or phase 2 runs in another
// process, the connection is closed and its session's end awaited, and phase 2 goes
// the usual way.
//
// At most parkedMax(PoolConnsMax) connections are parked, so that the pool keeps
// connections for prepares, phase 2 and status; beyond it a prepare detaches as before.

// parkedConn is a connection holding the prepared XA transaction of one gid.
type parkedConn struct {
	conn      *sql.Conn
	sessionID int64
}

// parkedMax is how many of poolConnsMax connections may be parked at once.
func parkedMax(poolConnsMax int) int { return poolConnsMax / 2 }

// park keeps conn for gid's phase 2 and reports whether it did (false: the bound is
// reached, the caller detaches).
func (p *Participant) park(gid string, conn *sql.Conn, sessionID int64) bool {
	p.parkMu.Lock()
	defer p.parkMu.Unlock()
	if p.closed || len(p.parked) >= parkedMax(p.cfg.PoolConnsMax) {
		return false
	}
	if _, dup := p.parked[gid]; dup {
		panic(fmt.Sprintf("sqlpart: gid %s parked twice", gid)) // prepare holds gid's lock and found it not prepared
	}
	p.parked[gid] = parkedConn{conn: conn, sessionID: sessionID}
	return true
}

// unpark takes gid's parked connection, if any; the caller holds gid's lock.
func (p *Participant) unpark(gid string) (parkedConn, bool) {
	p.parkMu.Lock()
	defer p.parkMu.Unlock()
	c, ok := p.parked[gid]
	delete(p.parked, gid)
	return c, ok
}

// ParkedCount is the number of connections holding a prepared transaction (always 0 on
// PostgreSQL).
func (p *Participant) ParkedCount() int {
	p.parkMu.Lock()
	defer p.parkMu.Unlock()
	return len(p.parked)
}

// finishParked runs q (XA COMMIT or XA ROLLBACK of the parked gid) on its session. On
// success the connection goes back to the pool; otherwise the session is closed, killed
// and its end awaited, so that any other connection can finish the transaction, and
// the error says what went wrong (the caller then goes the usual way).
func (p *Participant) finishParked(ctx context.Context, pc parkedConn, q string) error {
	sctx, cancel := context.WithTimeout(ctx, p.cfg.StatementTimeout)
	_, err := pc.conn.ExecContext(sctx, q)
	cancel()
	if err == nil {
		_ = pc.conn.Close()
		return nil
	}
	p.dropParked(ctx, pc)
	return err
}

// dropParked closes a parked connection without giving it back to the pool and waits
// (at most StatementTimeout) until the server no longer lists its session. It does not
// KILL the session: after a server restart its id may belong to another client's
// session (the wait then merely runs out, and phase 2 goes on).
func (p *Participant) dropParked(ctx context.Context, pc parkedConn) {
	_ = pc.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = pc.conn.Close()
	wctx, cancel := context.WithTimeout(ctx, p.cfg.StatementTimeout)
	defer cancel()
	if err := p.d.awaitSessionEnd(wctx, p.db, pc.sessionID); err != nil {
		p.log.Warn("sqlpart: waiting for a dropped session to end", "session", pc.sessionID, "err", err)
	}
}

// closeParked drops every parked connection (at Close); their transactions stay
// prepared in the database.
func (p *Participant) closeParked() {
	p.parkMu.Lock()
	parked := p.parked
	p.parked = map[string]parkedConn{}
	p.closed = true
	p.parkMu.Unlock()
	for _, pc := range parked {
		_ = pc.conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = pc.conn.Close()
	}
}

// sessionID is conn's session id on the server (what a parked connection's failure, or
// a detach, needs), asked once per physical connection: connections now go back to the
// pool after phase 2, so the question would otherwise cost a round trip per prepare.
// The cache holds its driver connections as keys (so none is freed and its address
// reused while listed) and is emptied when it outgrows the pool.
func (p *Participant) sessionID(ctx context.Context, conn *sql.Conn) (int64, error) {
	if !p.d.holdsPrepared() {
		return 0, nil
	}
	var key any
	_ = conn.Raw(func(dc any) error { key = dc; return nil })
	p.parkMu.Lock()
	sid, ok := p.sids[key]
	p.parkMu.Unlock()
	if ok {
		return sid, nil
	}
	sid, err := p.d.sessionID(ctx, conn)
	if err != nil {
		return 0, err
	}
	p.parkMu.Lock()
	if len(p.sids) >= 4*p.cfg.PoolConnsMax {
		clear(p.sids)
	}
	p.sids[key] = sid
	p.parkMu.Unlock()
	return sid, nil
}
