package raft

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// spyLogStore wraps an InmemStore, counts GetLog calls and can be made to
// fail StoreLogs.
type spyLogStore struct {
	*InmemStore
	gets     atomic.Int64
	storeErr error
}

func (s *spyLogStore) GetLog(index uint64, log *Log) error {
	s.gets.Add(1)
	return s.InmemStore.GetLog(index, log)
}

func (s *spyLogStore) StoreLogs(logs []*Log) error {
	if s.storeErr != nil {
		return s.storeErr
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *spyLogStore) StoreLog(log *Log) error { return s.StoreLogs([]*Log{log}) }

// monotonicSpy adds IsMonotonic to a spyLogStore.
type monotonicSpy struct {
	*spyLogStore
	monotonic bool
}

func (m monotonicSpy) IsMonotonic() bool { return m.monotonic }

func newSpyCache(t *testing.T, capacity int) (*LogCache, *spyLogStore) {
	t.Helper()
	spy := &spyLogStore{InmemStore: NewInmemStore()}
	c, err := NewLogCache(capacity, spy)
	if err != nil {
		t.Fatal(err)
	}
	return c, spy
}

func TestNewLogCacheRejectsBadArguments(t *testing.T) {
	for _, capacity := range []int{0, -1} {
		_, err := NewLogCache(capacity, NewInmemStore())
		if err == nil || err.Error() != "capacity must be positive" {
			t.Errorf("NewLogCache(%d) = %v; want \"capacity must be positive\"", capacity, err)
		}
	}
	if _, err := NewLogCache(1, nil); err == nil {
		t.Error("NewLogCache with a nil store succeeded")
	}
}

func TestLogCacheReads(t *testing.T) {
	cases := []struct {
		name      string
		capacity  int
		stored    []uint64
		get       uint64
		fromStore bool
		wantErr   error
	}{
		{name: "recent entry from cache", capacity: 4, stored: inmemIndexRange(1, 8), get: 8},
		{name: "oldest cached entry", capacity: 4, stored: inmemIndexRange(1, 8), get: 5},
		// Slot 1 holds entry 5: it must not answer for entry 1.
		{name: "evicted entry from store", capacity: 4, stored: inmemIndexRange(1, 8), get: 1, fromStore: true},
		{name: "never stored", capacity: 4, stored: inmemIndexRange(1, 3), get: 4, fromStore: true, wantErr: ErrLogNotFound},
		// An empty slot holds the zero Log; it must not answer for index 0.
		{name: "index zero", capacity: 4, get: 0, fromStore: true, wantErr: ErrLogNotFound},
		{name: "capacity one", capacity: 1, stored: inmemIndexRange(1, 3), get: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, spy := newSpyCache(t, tc.capacity)
			if err := c.StoreLogs(inmemLogs(tc.stored...)); err != nil {
				t.Fatal(err)
			}
			var l Log
			err := c.GetLog(tc.get, &l)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("GetLog(%d) = %v; want %v", tc.get, err, tc.wantErr)
			}
			if err == nil && (l.Index != tc.get || l.Data[0] != byte(tc.get)) {
				t.Fatalf("GetLog(%d) returned entry %d", tc.get, l.Index)
			}
			if gotStore := spy.gets.Load() > 0; gotStore != tc.fromStore {
				t.Fatalf("GetLog(%d) went to the store: %v; want %v", tc.get, gotStore, tc.fromStore)
			}
		})
	}
}

func TestLogCacheStoreFailure(t *testing.T) {
	c, spy := newSpyCache(t, 4)
	diskFull := errors.New("disk full")
	spy.storeErr = diskFull
	err := c.StoreLog(&Log{Index: 1})
	const want = `unable to store logs within log store, err: "disk full"`
	if err == nil || err.Error() != want {
		t.Fatalf("StoreLog with a failing store = %v; want %s", err, want)
	}
	if !errors.Is(err, diskFull) {
		t.Fatal("the store's error is not reachable with errors.Is")
	}
	// Nothing was cached: the read goes to the store, which has nothing.
	var l Log
	if err := c.GetLog(1, &l); !errors.Is(err, ErrLogNotFound) || spy.gets.Load() != 1 {
		t.Fatalf("GetLog after a failed store = %v (store reads %d); want ErrLogNotFound from the store", err, spy.gets.Load())
	}
}

func TestLogCacheDeleteRangeClearsCache(t *testing.T) {
	c, spy := newSpyCache(t, 8)
	if err := c.StoreLogs(inmemLogs(inmemIndexRange(1, 6)...)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRange(5, 6); err != nil {
		t.Fatal(err)
	}
	var l Log
	if err := c.GetLog(6, &l); !errors.Is(err, ErrLogNotFound) {
		t.Fatalf("GetLog of a deleted entry = %v; want ErrLogNotFound", err)
	}
	// Entries that survive are read from the store after the clear.
	before := spy.gets.Load()
	if err := c.GetLog(2, &l); err != nil || l.Index != 2 {
		t.Fatalf("GetLog(2) = %+v, %v", l, err)
	}
	if spy.gets.Load() != before+1 {
		t.Fatal("GetLog(2) was answered by a cache that should be empty")
	}
	first, _ := c.FirstIndex()
	last, _ := c.LastIndex()
	if first != 1 || last != 4 {
		t.Fatalf("bounds %d..%d; want 1..4", first, last)
	}
}

func TestLogCacheKeepsItsOwnCopy(t *testing.T) {
	c, _ := newSpyCache(t, 4)
	l := &Log{Index: 3, Term: 1}
	if err := c.StoreLog(l); err != nil {
		t.Fatal(err)
	}
	l.Index = 7 // the caller reuses its struct
	var got Log
	if err := c.GetLog(3, &got); err != nil || got.Index != 3 {
		t.Fatalf("GetLog(3) = %+v, %v; want entry 3", got, err)
	}
	if err := c.GetLog(7, &got); !errors.Is(err, ErrLogNotFound) {
		t.Fatalf("GetLog(7) = %v; want ErrLogNotFound", err)
	}
}

func TestLogCacheIsMonotonic(t *testing.T) {
	plain := &spyLogStore{InmemStore: NewInmemStore()}
	cases := []struct {
		name  string
		store LogStore
		want  bool
	}{
		{"plain store", plain, false},
		{"monotonic store", monotonicSpy{plain, true}, true},
		{"store that says no", monotonicSpy{plain, false}, false},
	}
	for _, tc := range cases {
		c, err := NewLogCache(2, tc.store)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.IsMonotonic(); got != tc.want {
			t.Errorf("%s: IsMonotonic = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// TestLogCacheConcurrentUse runs readers against a writer that appends and
// deletes, then checks that the cache agrees with the store everywhere: a
// delete racing with a store must never leave a deleted entry cached.
func TestLogCacheConcurrentUse(t *testing.T) {
	store := NewInmemStore()
	c, err := NewLogCache(16, store)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := uint64(1); ; idx = idx%300 + 1 {
				select {
				case <-done:
					return
				default:
				}
				var l Log
				if err := c.GetLog(idx, &l); err == nil && l.Index != idx {
					t.Errorf("GetLog(%d) returned entry %d", idx, l.Index)
					return
				}
			}
		}()
	}
	// A second writer deletes while the first appends.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(0); i < 200; i++ {
			_ = c.DeleteRange(i, i+3)
		}
	}()
	for idx := uint64(1); idx <= 300; idx += 3 {
		if err := c.StoreLogs(inmemLogs(idx, idx+1, idx+2)); err != nil {
			t.Error(err)
		}
	}
	close(done)
	wg.Wait()
	for idx := uint64(0); idx <= 305; idx++ {
		var fromCache, fromStore Log
		errCache := c.GetLog(idx, &fromCache)
		errStore := store.GetLog(idx, &fromStore)
		if (errCache == nil) != (errStore == nil) || fromCache.Index != fromStore.Index {
			t.Fatalf("index %d: cache says %+v, %v; store says %+v, %v", idx, fromCache, errCache, fromStore, errStore)
		}
	}
}

// pausingLogStore stops inside StoreLogs, after the entries are stored,
// until proceed is closed.
type pausingLogStore struct {
	*InmemStore
	stored  chan struct{}
	proceed chan struct{}
}

func (p *pausingLogStore) StoreLogs(logs []*Log) error {
	err := p.InmemStore.StoreLogs(logs)
	close(p.stored)
	<-p.proceed
	return err
}

// TestLogCacheDeleteDuringStore deletes entries while StoreLogs is between
// writing the store and filling the cache. The deleted entries must not be
// cached afterwards.
func TestLogCacheDeleteDuringStore(t *testing.T) {
	store := &pausingLogStore{InmemStore: NewInmemStore(), stored: make(chan struct{}), proceed: make(chan struct{})}
	c, err := NewLogCache(8, store)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := c.StoreLogs(inmemLogs(1, 2, 3)); err != nil {
			t.Error(err)
		}
	}()
	<-store.stored
	go func() {
		defer wg.Done()
		if err := c.DeleteRange(1, 3); err != nil {
			t.Error(err)
		}
	}()
	// Give DeleteRange every chance to run now; it must wait for the store.
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	close(store.proceed)
	wg.Wait()
	for idx := uint64(1); idx <= 3; idx++ {
		var l Log
		if err := c.GetLog(idx, &l); !errors.Is(err, ErrLogNotFound) {
			t.Errorf("GetLog(%d) after DeleteRange = %+v, %v; want ErrLogNotFound", idx, l, err)
		}
	}
}
