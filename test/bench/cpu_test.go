package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc CPU times (100 on
// every Linux this runs on).
const clockTicks = 100

// cpuSample is the CPU time used so far by each kind of process (by
// command name), by the children each has reaped ("kwok children" is the sh
// it runs for each exec, and what that sh runs), and by the whole machine,
// in seconds.
type cpuSample struct {
	byName      map[string]float64
	busy, total float64
}

func sampleCPU() cpuSample {
	s := cpuSample{byName: map[string]float64{}}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		if cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "cmdline")); len(cmdline) == 0 {
			continue // a kernel thread (or gone meanwhile): not one of ours
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		open, close := strings.IndexByte(string(raw), '('), strings.LastIndexByte(string(raw), ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(string(raw[close+1:]))
		if len(fields) < 15 {
			continue
		}
		ticks := make([]float64, 4) // utime stime cutime cstime
		for i, f := range fields[11:15] {
			ticks[i], _ = strconv.ParseFloat(f, 64)
		}
		name := string(raw[open+1 : close])
		s.byName[name] += (ticks[0] + ticks[1]) / clockTicks
		s.byName[name+" children"] += (ticks[2] + ticks[3]) / clockTicks
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		for i, f := range strings.Fields(line)[1:] {
			n, _ := strconv.ParseFloat(f, 64)
			s.total += n / clockTicks
			if i != 3 && i != 4 { // idle, iowait
				s.busy += n / clockTicks
			}
		}
	}
	return s
}

// since is the CPU used between before and s.
func (s cpuSample) since(before cpuSample) cpuSample {
	d := cpuSample{byName: map[string]float64{}, busy: s.busy - before.busy, total: s.total - before.total}
	for name, v := range s.byName {
		if n := v - before.byName[name]; n > 0 {
			d.byName[name] = n
		}
	}
	return d
}

// perCall lists CPU milliseconds per call over calls calls, heaviest first
// (processes under 2% of the total left out), and how busy the machine was.
func (s cpuSample) perCall(calls int) string {
	var sum float64
	names := make([]string, 0, len(s.byName))
	for name, v := range s.byName {
		sum += v
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return s.byName[names[i]] > s.byName[names[j]] })
	var parts []string
	for _, name := range names {
		if v := s.byName[name]; v >= 0.02*sum {
			parts = append(parts, fmt.Sprintf("%s %.1f", name, 1000*v/float64(calls)))
		}
	}
	busy := 0.0
	if s.total > 0 {
		busy = 100 * s.busy / s.total
	}
	return fmt.Sprintf("%s ms CPU per call (all processes %.1f); machine %.0f%% busy", strings.Join(parts, ", "), 1000*sum/float64(calls), busy)
}
