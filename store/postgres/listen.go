package postgres

import (
	"context"
	"sync"
	"time"
)

// listener holds one connection of the pool in LISTEN stopline_operator
// and signals the store's hub at every notification, and once more each
// time it (re)connects, since notifications sent while it was not
// listening are lost.
type listener struct {
	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// start starts the listener once.
func (l *listener) start(s *Store) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return
	}
	l.started = true
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go l.run(ctx, s)
}

// stop ends the listener and waits for it.
func (l *listener) stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (l *listener) run(ctx context.Context, s *Store) {
	defer close(l.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := l.listen(ctx, s); err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

func (l *listener) listen(ctx context.Context, s *Store) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that has been in LISTEN goes back to no pool.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN stopline_operator"); err != nil {
		return err
	}
	s.hub.Signal() // whatever changed while nobody listened
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		s.hub.Signal()
	}
}
