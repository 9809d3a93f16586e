// Command raftkv is a small replicated key-value store built on QuorumKit
// Raft, and the project's quickstart.
//
//	go run ./cmd/raftkv dev       # a 3-node cluster in this process
//	go run ./cmd/raftkv dev -v    # the same, with the nodes' logs
//
// A real cluster, one process per server (see README.md):
//
//	raftkv serve -id node1 -raft 127.0.0.1:7001 -http 127.0.0.1:8001 -data data/node1 -bootstrap -secret s3cret
//	raftkv serve -id node2 -raft 127.0.0.1:7002 -http 127.0.0.1:8002 -data data/node2 -join 127.0.0.1:8001 -secret s3cret
//	curl -L -X PUT --data hello http://127.0.0.1:8001/kv/greeting
//	curl -L http://127.0.0.1:8002/kv/greeting
//
// With -ca, -cert and -key, raft runs over mutual TLS and the API over
// HTTPS for clients with a certificate of the same CA (see tls.go).
//
// A server keeps its log in a wal directory under -data, or in a raftboltdb
// file with -store bolt; a data directory that already holds either keeps it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "dev":
		fs := flag.NewFlagSet("dev", flag.ExitOnError)
		verbose := fs.Bool("v", false, "print the nodes' logs to stderr")
		fs.Parse(os.Args[2:])
		if err := runDev(*verbose); err != nil {
			fmt.Fprintln(os.Stderr, "raftkv:", err)
			os.Exit(1)
		}
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		var cfg serverConfig
		fs.StringVar(&cfg.id, "id", "", "this server's ID (required)")
		fs.StringVar(&cfg.raftAddr, "raft", "127.0.0.1:7001", "address for raft traffic")
		fs.StringVar(&cfg.advertise, "advertise", "", "raft address peers should use, if not -raft")
		fs.DurationVar(&cfg.heartbeat, "heartbeat", 0, "heartbeat and election timeout (default 1s)")
		fs.StringVar(&cfg.httpAddr, "http", "127.0.0.1:8001", "address for the HTTP API")
		fs.StringVar(&cfg.dataDir, "data", "", "data directory (required)")
		fs.BoolVar(&cfg.bootstrap, "bootstrap", false, "start a new cluster with this server")
		fs.StringVar(&cfg.join, "join", "", "HTTP address of a member to join through")
		fs.StringVar(&cfg.store, "store", storeWAL, "log store of a new data directory: wal or bolt (raftboltdb); a directory that holds one keeps it")
		fs.StringVar(&cfg.caFile, "ca", "", "TLS: the cluster's CA certificate (PEM); with -cert and -key, raft runs over mutual TLS and the API over HTTPS")
		fs.StringVar(&cfg.certFile, "cert", "", "TLS: this server's certificate (PEM), naming its -id as common name")
		fs.StringVar(&cfg.keyFile, "key", "", "TLS: this server's private key (PEM)")
		fs.StringVar(&cfg.secret, "secret", "", "shared secret that authorises membership changes (Authorization: Bearer SECRET); also sent by -join")
		fs.Parse(os.Args[2:])
		if cfg.id == "" || cfg.dataDir == "" {
			fmt.Fprintln(os.Stderr, "raftkv serve: -id and -data are required")
			os.Exit(2)
		}
		cfg.logOutput = os.Stderr
		s, err := startServer(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "raftkv:", err)
			os.Exit(1)
		}
		fmt.Printf("raftkv %s: raft on %s, HTTP on %s\n", cfg.id, s.trans.LocalAddr(), s.cfg.httpAddr)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		s.close()
	case "put", "get", "del", "cas", "members", "status":
		os.Exit(runClientCommand(os.Args[1], os.Args[2:]))
	default:
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: raftkv <command> [flags]

commands:
  dev    run a 3-node cluster in memory and show elections and replication
  serve  run one server of a cluster (raftkv serve -h for its flags)
  put, get, del, cas, members, status
         talk to a cluster (raftkv get -h for all of them)`)
}
