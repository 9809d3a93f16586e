// Command raftkv is a small replicated key-value store built on QuorumKit
// Raft, and the project's quickstart.
//
//	go run ./cmd/raftkv dev       # a 3-node cluster in this process
//	go run ./cmd/raftkv dev -v    # the same, with the nodes' logs
package main

import (
	"flag"
	"fmt"
	"os"
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
	default:
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: raftkv <command> [flags]

commands:
  dev    run a 3-node cluster in memory and show elections and replication`)
}
