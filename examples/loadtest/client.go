package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"
)

// The client process is the tool itself, started again with clientFlag as
// its first argument and clientEnv set to "1" (either one makes a client:
// the flag for the tool's binary, the variable for a test binary, whose
// TestMain sees it before the testing package parses its flags).
const (
	clientFlag = "-client"
	clientEnv  = "MFAKIT_LOADTEST_CLIENT"
)

// isClient reports whether this process was started as the client.
func isClient() bool {
	return os.Getenv(clientEnv) == "1" || (len(os.Args) > 1 && os.Args[1] == clientFlag)
}

// doneLine is what the client writes when a job's last answer is in,
// before its Outcome: the parent reads the server process's allocation
// counter on it, so that decoding the Outcome is not counted.
const doneLine = "done\n"

// heldLine is what the client writes when it holds a list (Job.Hold).
const heldLine = "held\n"

// clientMain is the client process: it reads Jobs, one JSON value at a
// time, from in until it ends, and answers each with doneLine and then
// its Outcome as one JSON line on out.
func clientMain(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	w := bufio.NewWriter(out)
	lists := map[string][]Request{}
	for {
		var j Job
		if err := dec.Decode(&j); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("client: reading a job: %w", err)
		}
		if j.Hold {
			lists[j.List] = j.Requests
			w.WriteString(heldLine)
			if err := w.Flush(); err != nil {
				return err
			}
			continue
		}
		list, ok := lists[j.List]
		if !ok {
			return fmt.Errorf("client: job %s/%s names list %q, which was never sent", j.Scenario, j.Side, j.List)
		}
		o := runJob(context.Background(), j, list)
		w.WriteString(doneLine)
		if err := w.Flush(); err != nil {
			return err
		}
		line, err := json.Marshal(o)
		if err != nil {
			return err
		}
		w.Write(line)
		w.WriteByte('\n')
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// external runs jobs in a client process: the tool's process then only
// serves, and the allocations it reports are the servers' (and the
// kit's background work's) alone.
type external struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	sent map[string]bool // lists the client holds
}

// startExternal starts the client process.
func startExternal() (*external, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("external clients: %w", err)
	}
	cmd := exec.Command(exe, clientFlag)
	cmd.Env = append(os.Environ(), clientEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("external clients: start %s: %w", exe, err)
	}
	return &external{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16), sent: map[string]bool{}}, nil
}

func (e *external) clientPID() int { return e.cmd.Process.Pid }

func (e *external) hold(l *load) error {
	if e.sent[l.name] {
		return nil
	}
	msg, err := json.Marshal(Job{List: l.name, Requests: l.requests, Hold: true})
	if err != nil {
		return err
	}
	if _, err := e.in.Write(append(msg, '\n')); err != nil {
		return fmt.Errorf("list %s: writing to the client process: %w", l.name, err)
	}
	if held, err := e.out.ReadSlice('\n'); err != nil || string(held) != heldLine {
		return fmt.Errorf("list %s: the client process answered %q, %v (its errors are on stderr)", l.name, held, err)
	}
	e.sent[l.name] = true
	return nil
}

func (e *external) drive(_ context.Context, j Job, l *load) (stats, error) {
	if !e.sent[l.name] {
		return stats{}, fmt.Errorf("job %s/%s: list %s was never held by the client", j.Scenario, j.Side, l.name)
	}
	msg, err := json.Marshal(j)
	if err != nil {
		return stats{}, err
	}
	msg = append(msg, '\n')
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := e.in.Write(msg); err != nil {
		return stats{}, fmt.Errorf("job %s/%s: writing to the client process: %w", j.Scenario, j.Side, err)
	}
	done, err := e.out.ReadSlice('\n')
	runtime.ReadMemStats(&after)
	if err != nil || string(done) != doneLine {
		return stats{}, fmt.Errorf("job %s/%s: the client process answered %q, %v (its errors are on stderr)", j.Scenario, j.Side, done, err)
	}
	line, err := e.out.ReadBytes('\n')
	if err != nil {
		return stats{}, fmt.Errorf("job %s/%s: reading the client's outcome: %w", j.Scenario, j.Side, err)
	}
	var o Outcome
	if err := json.Unmarshal(bytes.TrimSpace(line), &o); err != nil {
		return stats{}, fmt.Errorf("job %s/%s: the client's outcome: %w", j.Scenario, j.Side, err)
	}
	return statsOf(o, after.Mallocs-before.Mallocs), nil
}

// close ends the client's input and waits for it to exit (killing it
// after a few seconds).
func (e *external) close() error {
	e.in.Close()
	exited := make(chan error, 1)
	go func() { exited <- e.cmd.Wait() }()
	select {
	case err := <-exited:
		return err
	case <-time.After(5 * time.Second):
		e.cmd.Process.Kill()
		return errors.Join(errors.New("the client process did not exit; killed"), <-exited)
	}
}

func (*external) mode() string { return "external" }
