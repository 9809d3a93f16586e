package main

// The client subcommands: raftkv put|get|del|cas|members|status. They are a
// thin layer over the client package (cmd/raftkv/client), which finds the
// leader and retries.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	kvclient "github.com/quorumkit/raft/cmd/raftkv/client"
)

// Exit codes of the client subcommands.
const (
	exitOK       = 0
	exitFailed   = 1 // the command failed; a write was not applied
	exitUsage    = 2
	exitUnknown  = 3 // a write may or may not have been applied
	exitNotFound = 4 // get: the key is absent
	exitMismatch = 5 // cas: the current value differs; nothing was written
)

const clientUsage = `client commands (flags may come before or after the arguments; -- ends them):
  put KEY VALUE              set KEY
  get KEY                    read KEY (-consistency linearizable|lease|stale)
  del KEY                    delete KEY (an absent key is fine)
  cas KEY EXPECTED NEW       set KEY to NEW if it holds EXPECTED (empty = absent)
  members                    list the members
  members add ID RAFT_ADDR HTTP_ADDR [-nonvoter]
  members remove ID          (membership changes need -secret or a certificate)
  status                     each node's view

client flags:
  -nodes host:port,...       HTTP addresses of members (default 127.0.0.1:8001)
  -ca FILE -cert FILE -key FILE
                             HTTPS with a client certificate (all three or none)
  -secret S                  shared secret for membership changes
  -json                      JSON output
  -timeout D                 bound on each command, retries included (default 10s)

exit codes: 0 done, 1 failed (a write was not applied), 2 usage,
  3 a write may or may not have been applied, 4 key not found, 5 cas mismatch`

// runClientCommand runs the client subcommand name with its arguments and
// returns the process's exit code.
func runClientCommand(name string, args []string) int {
	return runClient(name, args, os.Stdout, os.Stderr)
}

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	nodes, ca, cert, key, secret string
	json                         bool
	timeout                      time.Duration
	consistency                  string // get
	nonvoter                     bool   // members add
}

func runClient(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("raftkv "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, clientUsage) }
	var f clientFlags
	fs.StringVar(&f.nodes, "nodes", "127.0.0.1:8001", "comma-separated HTTP addresses of members")
	fs.StringVar(&f.ca, "ca", "", "CA certificate file (PEM)")
	fs.StringVar(&f.cert, "cert", "", "client certificate file (PEM)")
	fs.StringVar(&f.key, "key", "", "client key file (PEM)")
	fs.StringVar(&f.secret, "secret", "", "shared secret for membership changes")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "bound on the command, retries included")
	if name == "get" {
		fs.StringVar(&f.consistency, "consistency", string(kvclient.Linearizable), "linearizable, lease or stale")
	}
	if name == "members" {
		fs.BoolVar(&f.nonvoter, "nonvoter", false, "members add: add a non-voter")
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "raftkv %s: %s\n%s\n", name, msg, clientUsage)
		return exitUsage
	}
	cfg, err := f.config()
	if err != nil {
		return usageErr(err.Error())
	}
	c, err := kvclient.New(cfg)
	if err != nil {
		return usageErr(err.Error())
	}
	defer c.Close()
	out := &printer{name: name, json: f.json, stdout: stdout, stderr: stderr}
	ctx := context.Background()

	switch name {
	case "put":
		if len(pos) != 2 {
			return usageErr("want KEY VALUE")
		}
		return out.done(c.Put(ctx, pos[0], []byte(pos[1])))
	case "get":
		if len(pos) != 1 {
			return usageErr("want KEY")
		}
		v, err := c.Get(ctx, pos[0], kvclient.Consistency(f.consistency))
		if err != nil {
			return out.fail(err)
		}
		return out.value(pos[0], v)
	case "del":
		if len(pos) != 1 {
			return usageErr("want KEY")
		}
		return out.done(c.Delete(ctx, pos[0]))
	case "cas":
		if len(pos) != 3 {
			return usageErr("want KEY EXPECTED NEW")
		}
		return out.done(c.CAS(ctx, pos[0], []byte(pos[1]), []byte(pos[2])))
	case "members":
		switch {
		case len(pos) == 0:
			m, err := c.Members(ctx)
			if err != nil {
				return out.fail(err)
			}
			return out.members(m)
		case pos[0] == "add" && len(pos) == 4:
			return out.done(c.AddMember(ctx, pos[1], pos[2], pos[3], !f.nonvoter))
		case pos[0] == "remove" && len(pos) == 2:
			return out.done(c.RemoveMember(ctx, pos[1]))
		}
		return usageErr("want no arguments, add ID RAFT_ADDR HTTP_ADDR [-nonvoter], or remove ID")
	case "status":
		if len(pos) != 0 {
			return usageErr("takes no arguments")
		}
		return out.status(ctx, c, cfg.Nodes)
	}
	return usageErr("unknown command")
}

// parseInterleaved parses fs's flags wherever they stand among args and
// returns the other arguments, in order; everything after "--" is an
// argument.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// config turns the flags into a client configuration.
func (f *clientFlags) config() (kvclient.Config, error) {
	cfg := kvclient.Config{Secret: f.secret, Timeout: f.timeout}
	for _, n := range strings.Split(f.nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Nodes = append(cfg.Nodes, n)
		}
	}
	if f.timeout <= 0 {
		return cfg, errors.New("-timeout must be positive")
	}
	if f.ca == "" && f.cert == "" && f.key == "" {
		return cfg, nil
	}
	if f.ca == "" || f.cert == "" || f.key == "" {
		return cfg, errors.New("-ca, -cert and -key go together")
	}
	caPEM, err := os.ReadFile(f.ca)
	if err != nil {
		return cfg, fmt.Errorf("reading the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return cfg, fmt.Errorf("%s holds no PEM certificate", f.ca)
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return cfg, fmt.Errorf("loading the client certificate: %w", err)
	}
	cfg.TLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return cfg, nil
}

// printer writes a command's result, plain or as JSON.
type printer struct {
	name           string
	json           bool
	stdout, stderr io.Writer
}

// exitCode maps a client error to the command's exit code.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, kvclient.ErrUnknownOutcome):
		return exitUnknown
	case errors.Is(err, kvclient.ErrNotFound):
		return exitNotFound
	case errors.Is(err, kvclient.ErrCASMismatch):
		return exitMismatch
	}
	return exitFailed
}

// fail reports err: on stderr, or as {"error", "outcome_unknown"} on
// stdout with -json.
func (p *printer) fail(err error) int {
	code := exitCode(err)
	if p.json {
		p.encode(struct {
			Error          string `json:"error"`
			OutcomeUnknown bool   `json:"outcome_unknown,omitempty"`
			NotFound       bool   `json:"not_found,omitempty"`
			Mismatch       bool   `json:"cas_mismatch,omitempty"`
		}{err.Error(), code == exitUnknown, code == exitNotFound, code == exitMismatch})
	} else {
		fmt.Fprintf(p.stderr, "raftkv %s: %v\n", p.name, err)
		if errors.Is(err, kvclient.ErrUnauthorized) {
			fmt.Fprintf(p.stderr, "raftkv %s: membership changes need -secret or -ca -cert -key\n", p.name)
		}
	}
	return code
}

// done reports a command that returns nothing but its success: silence, or
// {"ok": true} with -json.
func (p *printer) done(err error) int {
	if err != nil {
		return p.fail(err)
	}
	if p.json {
		p.encode(map[string]bool{"ok": true})
	}
	return exitOK
}

// value prints a value read: the bytes and a newline, or {"key", "value"}
// with -json (invalid UTF-8 becomes U+FFFD there).
func (p *printer) value(key string, v []byte) int {
	if p.json {
		p.encode(map[string]string{"key": key, "value": string(v)})
		return exitOK
	}
	p.stdout.Write(v)
	io.WriteString(p.stdout, "\n")
	return exitOK
}

func (p *printer) members(m *kvclient.Membership) int {
	if p.json {
		p.encode(m)
		return exitOK
	}
	tw := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUFFRAGE\tRAFT\tHTTP\t")
	for _, mb := range m.Members {
		lead := ""
		if mb.ID == m.LeaderID {
			lead = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mb.ID, mb.Suffrage, mb.RaftAddr, mb.HTTPAddr, lead)
	}
	tw.Flush()
	return exitOK
}

// status asks every node for its view; it fails if any node does not
// answer.
func (p *printer) status(ctx context.Context, c *kvclient.Client, nodes []string) int {
	type entry struct {
		Node   string           `json:"node"`
		Status *kvclient.Status `json:"status,omitempty"`
		Error  string           `json:"error,omitempty"`
	}
	var all []entry
	code := exitOK
	for _, n := range nodes {
		st, err := c.Status(ctx, n)
		e := entry{Node: n, Status: st}
		if err != nil {
			e.Error, code = err.Error(), exitFailed
		}
		all = append(all, e)
	}
	if p.json {
		p.encode(all)
		return code
	}
	tw := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tSTATE\tLEADER\tTERM\tCOMMIT\tAPPLIED\t")
	for _, e := range all {
		if e.Status == nil {
			fmt.Fprintf(tw, "%s\terror: %s\n", e.Node, e.Error)
			continue
		}
		s := e.Status
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", e.Node, dash(s.ID), dash(s.State), dash(s.LeaderID),
			dash(s.Stats["term"]), dash(s.Stats["commit_index"]), dash(s.Stats["applied_index"]))
	}
	tw.Flush()
	return code
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *printer) encode(v any) {
	enc := json.NewEncoder(p.stdout)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
