package chaosreal

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ProxyMode is what a Proxy does to the traffic between dtc and one participant.
type ProxyMode int

// The modes. A mode applies to new and to open connections alike.
const (
	// Pass forwards every byte as it comes.
	Pass ProxyMode = iota
	// Delay holds every chunk of bytes for the proxy's delay before forwarding it.
	Delay
	// Drop resets every open connection (RST) when it begins, and every new one while
	// it lasts: the participant looks down.
	Drop
	// Blackhole accepts connections and reads what they send, but forwards nothing and
	// answers nothing: a partition, seen from dtc as timeouts. A connection that lost
	// bytes to it is reset when the blackhole ends (its HTTP stream is broken).
	Blackhole
)

func (m ProxyMode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case Drop:
		return "drop"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// chunkMaxBytes is the size of one read of a proxied connection.
const chunkMaxBytes = 32 << 10

// Proxy is a fault-injecting TCP proxy in front of one participant: dtc is given its
// address instead of the participant's. It forwards raw bytes; a tap (if set) sees a
// copy of what was forwarded each way, with the time each chunk was read.
type Proxy struct {
	name   string
	ln     net.Listener
	target string
	tap    func() *tapConn // nil: no tap

	mu      sync.Mutex
	mode    ProxyMode
	delay   time.Duration
	conns   map[*proxyConn]struct{}
	closed  bool
	resets  int // connections reset by Drop or after a Blackhole
	lost    int // bytes swallowed by Drop or Blackhole
	wg      sync.WaitGroup
	dialErr int // connections whose participant could not be reached
}

type proxyConn struct {
	client, server net.Conn
	tainted        bool // bytes were swallowed by a blackhole: reset at the heal
	tap            *tapConn
}

// NewProxy listens on a free loopback port and forwards to target (host:port).
func NewProxy(name, target string, tap func() *tapConn) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaosreal: proxy for %s: %w", name, err)
	}
	p := &Proxy{name: name, ln: ln, target: target, tap: tap, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set switches the proxy to mode (with delay d for Delay). Entering Drop resets every
// open connection; leaving Blackhole resets the connections it swallowed bytes of.
func (p *Proxy) Set(mode ProxyMode, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.mode
	p.mode, p.delay = mode, d
	for c := range p.conns {
		if mode == Drop || (prev == Blackhole && mode != Blackhole && c.tainted) {
			p.resetLocked(c)
		}
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Resets returns how many connections the proxy has reset.
func (p *Proxy) Resets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets
}

// Lost returns how many bytes the proxy swallowed.
func (p *Proxy) Lost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// Close stops accepting, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		p.resetLocked(c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// resetLocked closes both ends of c at once, with RST where it can.
func (p *Proxy) resetLocked(c *proxyConn) {
	if _, ok := p.conns[c]; !ok {
		return
	}
	delete(p.conns, c)
	p.resets++
	reset(c.client)
	if c.server != nil {
		reset(c.server)
	}
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST
	}
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		if p.closed || p.mode == Drop {
			p.resets++
			p.mu.Unlock()
			reset(conn)
			continue
		}
		c := &proxyConn{client: conn}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

// serve connects c to the participant and pumps both ways until either side closes.
func (p *Proxy) serve(c *proxyConn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	p.mu.Lock()
	if err != nil || p.closed {
		p.dialErr++
		p.resetLocked(c)
		p.mu.Unlock()
		if server != nil {
			reset(server)
		}
		return
	}
	if _, ok := p.conns[c]; !ok { // reset while dialing
		p.mu.Unlock()
		reset(server)
		return
	}
	c.server = server
	if p.tap != nil {
		c.tap = p.tap()
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(c, c.client, server, true) }()
	go func() { defer wg.Done(); p.pump(c, server, c.client, false) }()
	wg.Wait()
	p.mu.Lock()
	p.resetLocked(c)
	p.mu.Unlock()
	if c.tap != nil {
		c.tap.close()
	}
}

// pump copies from src to dst, chunk by chunk, applying the mode of the moment to each.
// toServer is the direction dtc → participant (requests).
func (p *Proxy) pump(c *proxyConn, src, dst net.Conn, toServer bool) {
	buf := make([]byte, chunkMaxBytes)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			at := now()
			p.mu.Lock()
			mode, d := p.mode, p.delay
			if mode == Blackhole {
				c.tainted = true
			}
			if mode == Blackhole || mode == Drop {
				p.lost += n
			}
			p.mu.Unlock()
			// The tap sees what the participant said, whether or not it gets through (a
			// vote is cast when it is sent), and what it was told only once it was.
			if !toServer && c.tap != nil {
				c.tap.feed(false, buf[:n], at)
			}
			if mode == Blackhole || mode == Drop {
				continue // swallowed (Drop resets the connection; bytes read just before are lost)
			}
			if mode == Delay && d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_ = src.Close()
				return
			}
			if toServer && c.tap != nil {
				c.tap.feed(true, buf[:n], at)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			} else if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
