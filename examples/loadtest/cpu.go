package main

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// The CPU a request costs. On one machine the servers, the clients and
// the database share the cores, and once they are busy a side's rate is
// the machine's CPU over what one request of it costs there. The tool
// reads what each round used from /proc (Linux; elsewhere the report
// leaves it out): the whole machine, the tool's process (the servers,
// and in-process the clients too), the client process, and the database
// server's processes when they run on this machine. Dividing by the
// round's requests says where a request's cost goes, which rates alone
// cannot: a ratio moves with the machine's speed from run to run, the
// split of one request's cost much less.

// ticksPerSecond is the unit of /proc's CPU times (USER_HZ), 100 on
// every Linux architecture Go runs on.
const ticksPerSecond = 100

// cpuTicks are CPU times in ticks. database is -1 when no process of the
// database server was found on this machine (or the store runs in the
// tool's process: SQLite, memory), client -1 when the clients run in the
// tool's process.
type cpuTicks struct{ machine, server, client, database int64 }

// cpuMeter samples the CPU times of a run.
type cpuMeter struct {
	// client is the client process's pid, 0 if the clients run in this
	// process.
	client int
	// database is the name (comm) of the database server's processes,
	// "" if the store has none.
	database string
}

// cpuMeterFor returns the meter of a run on backend, with the clients in
// process client (0: in this one).
func cpuMeterFor(backend string, client int) cpuMeter {
	m := cpuMeter{client: client}
	switch backend {
	case "postgres":
		m.database = "postgres"
	case "redis":
		m.database = "redis-server"
	}
	return m
}

// sample reads the CPU times used so far; ok is false where /proc is not
// there to read.
func (m cpuMeter) sample() (t cpuTicks, ok bool) {
	if runtime.GOOS != "linux" {
		return cpuTicks{}, false
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, false
	}
	// cpu  user nice system idle iowait irq softirq steal guest guest_nice:
	// busy is user, nice, system, irq and softirq (guest time is counted
	// in user already).
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTicks{}, false
	}
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return cpuTicks{}, false
		}
		t.machine += v
	}
	if t.server, ok = processTicks("self"); !ok {
		return cpuTicks{}, false
	}
	t.client, t.database = -1, -1
	if m.client != 0 {
		if t.client, ok = processTicks(strconv.Itoa(m.client)); !ok {
			return cpuTicks{}, false
		}
	}
	if m.database != "" {
		t.database = namedTicks(m.database)
	}
	return t, true
}

// processTicks returns the user and system time of process pid ("self"
// for this one).
func processTicks(pid string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	_, ticks, ok := parseStat(b)
	return ticks, ok
}

// parseStat reads the name (comm) and the user plus system time of a
// /proc/<pid>/stat. The name is in parentheses and may hold spaces and
// parentheses itself: the fields after it start after the last ')'.
func parseStat(b []byte) (comm string, ticks int64, ok bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	// After the name: state (field 3) ... utime (14), stime (15).
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return "", 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return string(b[open+1 : end]), u + s, true
}

// namedTicks returns the time of all processes named comm, or -1 if
// there is none. A process that ended between two samples takes its time
// with it: the database servers' pooled connections last the run.
func namedTicks(comm string) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	total, found := int64(0), false
	for _, e := range entries {
		if name := e.Name(); name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		if c, ticks, ok := parseStat(b); ok && c == comm {
			total, found = total+ticks, true
		}
	}
	if !found {
		return -1
	}
	return total
}

// since returns the ticks used from before to t; a part either lacks
// stays -1.
func (t cpuTicks) since(before cpuTicks) cpuTicks { return t.combine(before, -1) }

// add sums the ticks of two rounds; a part either lacks stays -1.
func (t cpuTicks) add(o cpuTicks) cpuTicks { return t.combine(o, 1) }

// combine returns t + sign × o, part by part; client and database stay
// -1 where either lacks them.
func (t cpuTicks) combine(o cpuTicks, sign int64) cpuTicks {
	part := func(a, b int64) int64 {
		if a < 0 || b < 0 {
			return -1
		}
		return a + sign*b
	}
	return cpuTicks{machine: t.machine + sign*o.machine, server: t.server + sign*o.server,
		client: part(t.client, o.client), database: part(t.database, o.database)}
}

// CPUCost is what one request of a side cost, in µs of CPU: on the whole
// machine, and of that in the tool's process (the servers; in-process,
// the clients too), the client process (absent in-process) and the
// database server's processes (absent when they are not on this
// machine). Measured over whole rounds, with a clock tick of 10 ms:
// precise to about 1 % at a few thousand requests a second.
type CPUCost struct {
	Machine  float64  `json:"machine"`
	Server   float64  `json:"server"`
	Client   *float64 `json:"client,omitempty"`
	Database *float64 `json:"database,omitempty"`
}

// perRequest returns t spread over requests, or nil if there were none.
func (t cpuTicks) perRequest(requests int64) *CPUCost {
	if requests <= 0 {
		return nil
	}
	us := func(ticks int64) float64 { return round(float64(ticks)*1e6/ticksPerSecond/float64(requests), 1) }
	opt := func(ticks int64) *float64 {
		if ticks < 0 {
			return nil
		}
		v := us(ticks)
		return &v
	}
	return &CPUCost{Machine: us(t.machine), Server: us(t.server), Client: opt(t.client), Database: opt(t.database)}
}

// String is the cost as the table shows it.
func (c *CPUCost) String() string {
	if c == nil {
		return "-"
	}
	s := strconv.FormatFloat(c.Machine, 'f', 0, 64) + " (server " + strconv.FormatFloat(c.Server, 'f', 0, 64)
	if c.Client != nil {
		s += ", client " + strconv.FormatFloat(*c.Client, 'f', 0, 64)
	}
	if c.Database != nil {
		s += ", database " + strconv.FormatFloat(*c.Database, 'f', 0, 64)
	}
	return s + ")"
}
