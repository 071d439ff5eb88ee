package coordinator

// askers remembers which participants ask the coordinator about the transactions they
// hold in doubt, as their last answer said (Reply.Asks). It decides whether a new
// transaction's begin record may stay lazy: presumed abort with a lazy begin is safe only
// for participants that ask, because a transaction whose begin was lost in a crash is
// unknown to the restarted engine, which therefore can never resolve it on its own.
//
// The table holds at most max participants. When it is full, the one that has been in
// it longest is forgotten, which errs on the safe side: a forgotten participant's
// transactions get a synced begin until it answers again.
type askers struct {
	max   int
	stamp map[string]uint64 // URL → when it entered (order's counter); present = asks
	order []askEntry        // entries in the order they entered; some may be stale
	next  uint64
}

type askEntry struct {
	url   string
	stamp uint64
}

func newAskers(max int) askers {
	return askers{max: max, stamp: make(map[string]uint64)}
}

// learn records what participant url said on its last answer.
func (a *askers) learn(url string, asks bool) {
	_, known := a.stamp[url]
	switch {
	case known == asks:
		return
	case !asks:
		delete(a.stamp, url) // its entry in order goes stale
		return
	}
	for len(a.stamp) >= a.max {
		a.evictOldest()
	}
	a.next++
	a.stamp[url] = a.next
	a.order = append(a.order, askEntry{url, a.next})
	// Stale entries (participants that stopped asking, or were evicted and came back)
	// are dropped once they make up half the queue, so it stays within 2*max.
	if len(a.order) > 2*a.max {
		live := a.order[:0]
		for _, e := range a.order {
			if a.stamp[e.url] == e.stamp {
				live = append(live, e)
			}
		}
		clear(a.order[len(live):])
		a.order = live
	}
}

func (a *askers) evictOldest() {
	for len(a.order) > 0 {
		e := a.order[0]
		a.order[0] = askEntry{}
		a.order = a.order[1:]
		if s, ok := a.stamp[e.url]; ok && s == e.stamp {
			delete(a.stamp, e.url)
			return
		}
	}
	panic("coordinator: askers table full but its queue is empty")
}

// all reports whether every participant in urls is known to ask.
func (a *askers) all(urls []string) bool {
	for _, u := range urls {
		if _, ok := a.stamp[u]; !ok {
			return false
		}
	}
	return true
}

// asks reports whether participant url is known to ask.
func (a *askers) asks(url string) bool {
	_, ok := a.stamp[url]
	return ok
}
