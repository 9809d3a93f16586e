// Command snaplimit measures what this machine allows a snapshot install
// of a given size, one part at a time and without any Raft library: a
// transfer over loopback TCP, a write plus fsync of the file, one CRC-64
// (ECMA) pass, and a fresh allocation filled from the cached file (what
// the sidebyside benchmark's FSM does in Restore). It prints the median of
// each over -reps runs, to set beside the snapshot mode of sidebyside.
//
//	cd interop && go run ./cmd/snaplimit -dir /path/on/the/disk/under/test
package main

import (
	"flag"
	"fmt"
	"hash/crc64"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to measure")
	mib := flag.Int("mib", 64, "bytes per measurement, in MiB")
	reps := flag.Int("reps", 5, "runs of each measurement")
	flag.Parse()
	if *mib < 1 || *reps < 1 {
		log.Fatal("snaplimit: -mib and -reps must be positive")
	}
	n := *mib << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	table := crc64.MakeTable(crc64.ECMA)
	var tcp, sync, crc, restore []time.Duration
	for range *reps {
		d, err := loopback(data)
		if err != nil {
			log.Fatal(err)
		}
		tcp = append(tcp, d)
		name := filepath.Join(*dir, ".snaplimit")
		d, err = writeSync(name, data)
		if err != nil {
			log.Fatal(err)
		}
		sync = append(sync, d)
		start := time.Now()
		crc64.Checksum(data, table)
		crc = append(crc, time.Since(start))
		d, err = readFresh(name, n)
		if err != nil {
			log.Fatal(err)
		}
		restore = append(restore, d)
		if err := os.Remove(name); err != nil {
			log.Fatal(err)
		}
	}
	rate := func(d time.Duration) string {
		return fmt.Sprintf("%v (%.0f MB/s)", d.Round(time.Millisecond), float64(n)/d.Seconds()/1e6)
	}
	fmt.Printf("%d MiB, medians of %d: loopback TCP %s; write+fsync %s; CRC-64 %s; allocate+read cached file %s\n",
		*mib, *reps, rate(median(tcp)), rate(median(sync)), rate(median(crc)), rate(median(restore)))
}

// loopback sends data over a TCP connection on 127.0.0.1 in 1 MiB writes
// and returns how long until the receiver has read all of it.
func loopback(data []byte) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.CopyBuffer(io.Discard, io.LimitReader(c, int64(len(data))), make([]byte, 1<<20))
			c.Close()
		}
		got <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := c.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			return 0, err
		}
	}
	if err := <-got; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// writeSync writes data to name in 1 MiB writes and fsyncs it.
func writeSync(name string, data []byte) (time.Duration, error) {
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// readFresh allocates n bytes and fills them from the (cached) file name.
func readFresh(name string, n int) (time.Duration, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func median(xs []time.Duration) time.Duration {
	slices.Sort(xs)
	return xs[len(xs)/2]
}
