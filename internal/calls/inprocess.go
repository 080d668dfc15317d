package calls

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// InProcess makes the three calls in this process, on a HERMES_HOME the
// process can open itself: the agent beside a gateway, and its command line
// inside a gateway's container. It keeps program.sh's contract exactly (the
// same outcomes, reports, refusals and messages: the conformance tests run
// both on the same homes), with system calls in place of commands. Every
// name inside the home is reached from the home's descriptor and never
// through a symbolic link, and neither is the home.
// The Pod argument is ignored.
type InProcess struct {
	// ProcRoot is where /proc is ("/proc" except in tests).
	ProcRoot string
}

func (p InProcess) Project(ctx context.Context, _ Pod, home string, req ProjectRequest) (Observation, error) {
	rendered, err := marker.Render(req.Marker)
	if err != nil {
		return Observation{}, err
	}
	if err := req.CheckProfiles(); err != nil {
		return Observation{}, err
	}
	token := marker.OwnerToken(req.Marker.Origin.GatewayDrainUID)
	replaceable := strings.TrimRight(string(req.Replaceable), "\n")
	return p.call(ctx, home, func(h *homeDir) (Outcome, string) { return h.project(token, replaceable, rendered) },
		func(name string, h *homeDir) (Outcome, string) {
			if !slices.Contains(req.Profiles, name) {
				return Read, ""
			}
			return h.project(token, "", rendered)
		})
}

func (p InProcess) Clear(ctx context.Context, _ Pod, home string, ownerUID string) (Observation, error) {
	token := marker.OwnerToken(ownerUID)
	clear := func(h *homeDir) (Outcome, string) { return h.clear(token) }
	return p.call(ctx, home, clear, func(_ string, h *homeDir) (Outcome, string) { return clear(h) })
}

func (p InProcess) Read(ctx context.Context, _ Pod, home string) (Observation, error) {
	return p.call(ctx, home, func(*homeDir) (Outcome, string) { return Read, "" }, nil)
}

// call acts on the root home, then on each profile home under it (profile
// nil: only reads them).
func (p InProcess) call(ctx context.Context, home string, act func(*homeDir) (Outcome, string), profile func(string, *homeDir) (Outcome, string)) (Observation, error) {
	if err := ctx.Err(); err != nil {
		return Observation{}, err
	}
	if home == "" {
		home = marker.OwnHome()
	}
	epoch := marker.ProcEpoch(p.ProcRoot)
	h := &homeDir{fd: -1, path: home, nonce: NewNonce(), proc: p.ProcRoot, epoch: epoch, maxFile: maxFile}
	outcome, msg := h.open()
	if outcome == "" {
		outcome, msg = act(h)
	}
	obs := Observation{Epoch: epoch, Home: home, GatewayHome: h.report(outcome)}
	if h.fd >= 0 {
		obs.Profiles, obs.ProfileCount = h.profiles(func(name string, ph *homeDir) (Outcome, string) {
			if profile == nil {
				return Read, ""
			}
			return profile(name, ph)
		})
	}
	h.close()
	if outcome == Failed {
		return obs, ContainerError(msg)
	}
	return obs, nil
}

// profiles acts on each profile home under h, by name: profiles/<name>, a
// directory reached without following a link, whose name is a profile's.
// It acts on the first MaxProfiles and counts them all.
func (h *homeDir) profiles(act func(string, *homeDir) (Outcome, string)) ([]Profile, int) {
	dirFd, err := unix.Openat(h.fd, profilesDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0
	}
	dir := os.NewFile(uintptr(dirFd), profilesDir)
	defer dir.Close()
	entries, _ := dir.ReadDir(-1)
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) }) // as the shell's glob
	var found []Profile
	count := 0
	for _, e := range entries {
		if !e.IsDir() || !ProfileName(e.Name()) { // IsDir is false for a link
			continue
		}
		count++
		if len(found) == MaxProfiles {
			continue
		}
		ph := &homeDir{fd: -1, path: h.path + "/" + profilesDir + "/" + e.Name(), nonce: h.nonce, proc: h.proc, epoch: h.epoch, maxFile: profileMaxFile}
		outcome, msg := Failed, ph.path+" is not a directory (gone, or a symbolic link)"
		if fd, err := unix.Openat(dirFd, e.Name(), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			ph.fd = fd
			outcome, msg = act(e.Name(), ph)
		}
		p := Profile{Name: e.Name(), GatewayHome: ph.report(outcome)}
		if outcome == Failed {
			p.Message = msg
		}
		found = append(found, p)
		ph.close()
	}
	return found, count
}

// profilesDir holds the profile homes in a root home.
const profilesDir = "profiles"

// homeDir is one call's HERMES_HOME, held open by descriptor.
type homeDir struct {
	fd      int
	path    string
	nonce   string
	proc    string
	epoch   string
	maxFile int64
}

func (h *homeDir) newName() string { return marker.Filename + "." + h.nonce + ".new" }
func (h *homeDir) oldName() string { return marker.Filename + "." + h.nonce + ".old" }
func (h *homeDir) in(name string) string {
	return h.path + "/" + name
}

// open enters HERMES_HOME as program.sh's check_home and `cd -P` do, and
// holds it by descriptor. It refuses a home that anyone but root, or the
// user this runs as, could swap for a link to elsewhere (check_home says the
// rule and why), with the same words. Each directory is opened from the one
// above it without following a link, so what is checked is what is entered.
func (h *homeDir) open() (Outcome, string) {
	if len(h.path) < 2 || h.path[0] != '/' {
		return Failed, "HERMES_HOME " + h.path + " is not an absolute path"
	}
	notDir := "HERMES_HOME " + h.path + " is not a directory"
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Failed, notDir
	}
	type dir struct {
		path string
		st   unix.Stat_t
	}
	walk := []dir{{path: "/"}}
	if unix.Fstat(fd, &walk[0].st) != nil {
		unix.Close(fd)
		return Failed, notDir
	}
	walked := ""
	for _, name := range strings.Split(h.path, "/") {
		if name == "" {
			continue
		}
		walked += "/" + name
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return Failed, notDir
		}
		fd = next
		d := dir{path: walked}
		if unix.Fstat(fd, &d.st) != nil {
			unix.Close(fd)
			return Failed, notDir
		}
		switch d.st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFLNK:
			unix.Close(fd)
			return Failed, "HERMES_HOME " + h.path + ": " + walked + " is a symbolic link: refusing it"
		default:
			unix.Close(fd)
			return Failed, notDir
		}
		walk = append(walk, d)
	}
	ours := func(st *unix.Stat_t) bool { return st.Uid == 0 || int(st.Uid) == os.Geteuid() }
	for i := 1; i < len(walk); i++ {
		above, entry := &walk[i-1].st, &walk[i].st
		if !ours(above) || above.Mode&(unix.S_IWGRP|unix.S_IWOTH) != 0 && (above.Mode&unix.S_ISVTX == 0 || !ours(entry)) {
			unix.Close(fd)
			return Failed, "HERMES_HOME " + h.path + ": " + walk[i-1].path + " lets a user other than root replace " + walk[i].path + ": refusing it"
		}
	}
	if unix.Faccessat(fd, ".", unix.X_OK, 0) != nil {
		unix.Close(fd)
		return Failed, notDir
	}
	h.fd = fd
	return "", ""
}

func (h *homeDir) close() {
	if h.fd >= 0 {
		unix.Close(h.fd)
	}
}

// what says a file state in program.sh's words.
func what(kind FileState) string {
	switch kind {
	case FileIrregular:
		return "a symbolic link or not a regular file"
	case FileDirectory:
		return "a directory"
	case FileUnreadable:
		return "unreadable: cannot read it"
	}
	return string(kind)
}

// maxFile bounds what is read of a file in the root home, profileMaxFile
// in a profile home and maxPIDFile of gateway.pid, as program.sh does: a
// call's report stays bounded (a few hundred bytes is what a gateway
// writes).
const (
	maxFile        = 64 << 10
	profileMaxFile = 16 << 10
	maxPIDFile     = 4 << 10
)

// load reads name if it is a regular file and not a symbolic link, at most
// maxFile bytes, with trailing newlines dropped as the shell's $(...) drops
// them. The file is opened without following a link and without blocking
// (a FIFO swapped in cannot hold the call), then checked again through the
// descriptor: it must be the very file that was looked at.
func (h *homeDir) load(name string) (FileState, []byte) { return h.loadAtMost(name, h.maxFile) }

func (h *homeDir) loadAtMost(name string, limit int64) (FileState, []byte) {
	var st unix.Stat_t
	if err := unix.Fstatat(h.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return FileAbsent, nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return FileDirectory, nil
	default:
		return FileIrregular, nil
	}
	fd, err := unix.Openat(h.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return FileIrregular, nil
	}
	if err != nil {
		return FileUnreadable, nil
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var opened unix.Stat_t
	if unix.Fstat(fd, &opened) != nil || opened.Mode&unix.S_IFMT != unix.S_IFREG || opened.Dev != st.Dev || opened.Ino != st.Ino {
		return FileIrregular, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return FileUnreadable, nil
	}
	return FilePresent, []byte(strings.TrimRight(string(data), "\n"))
}

func (h *homeDir) exists(name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(h.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

func (h *homeDir) project(token, replaceable string, rendered marker.Rendered) (Outcome, string) {
	if strings.Trim(h.epoch, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:-") != "" {
		return Failed, "epoch " + h.epoch + " has unexpected characters"
	}
	word := Written
	switch kind, text := h.load(marker.Filename); {
	case kind == FilePresent && strings.Contains(string(text), token):
		word = Refreshed
	case kind == FilePresent && replaceable != "" && string(text) == replaceable:
		word = Replaced
	case kind == FilePresent:
		return Foreign, ""
	case kind != FileAbsent:
		return Failed, h.in(marker.Filename) + " is " + what(kind) + ": refusing to replace it"
	}
	// Stamped with this host's clock, the gateway's: upstream's expiry is
	// measured on it.
	if !h.writeNew(rendered.Text(time.Now(), h.epoch)) {
		return Failed, "cannot write " + h.in(marker.Filename) + ": cannot create a file in " + h.path + " (read-only or full?)"
	}
	if word == Written {
		// Created, never replaced: the link fails if a marker appeared
		// since it was read, which is then left alone.
		if unix.Linkat(h.fd, h.newName(), h.fd, marker.Filename, 0) != nil {
			if h.exists(marker.Filename) {
				return Foreign, ""
			}
			return Failed, "cannot create " + h.in(marker.Filename)
		}
		return word, ""
	}
	if unix.Renameat(h.fd, h.newName(), h.fd, marker.Filename) != nil {
		return Failed, "cannot replace " + h.in(marker.Filename)
	}
	return word, ""
}

// writeNew writes text to a file of a name no one can have planted, created
// exclusively, and flushes it to disk before it is put in place.
func (h *homeDir) writeNew(text string) bool {
	fd, err := unix.Openat(h.fd, h.newName(), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), h.newName())
	defer f.Close()
	if f.Chmod(0o644) != nil {
		return false
	}
	_, err = io.WriteString(f, text)
	return err == nil && f.Sync() == nil
}

func (h *homeDir) clear(token string) (Outcome, string) {
	kind, text := h.load(marker.Filename)
	switch {
	case kind == FileAbsent:
		return Absent, ""
	case kind != FilePresent:
		return Failed, h.in(marker.Filename) + " is " + what(kind) + ": refusing to remove it"
	case !strings.Contains(string(text), token):
		return Foreign, ""
	}
	// Taken away under a private name and checked again before it is
	// removed: a marker someone wrote since the read is put back.
	if unix.Renameat(h.fd, marker.Filename, h.fd, h.oldName()) != nil {
		return Failed, "cannot remove " + h.in(marker.Filename)
	}
	if kind, text := h.load(h.oldName()); kind == FilePresent && strings.Contains(string(text), token) {
		if unix.Unlinkat(h.fd, h.oldName(), 0) != nil {
			return Failed, "cannot remove " + h.in(h.oldName())
		}
		return Cleared, ""
	}
	_ = unix.Linkat(h.fd, h.oldName(), h.fd, marker.Filename, 0)
	_ = unix.Unlinkat(h.fd, h.oldName(), 0)
	return Foreign, ""
}

// report is what program.sh prints after acting: the home's files as they
// are now, and the processes they name.
func (h *homeDir) report(outcome Outcome) GatewayHome {
	r := GatewayHome{Outcome: outcome, Marker: File{State: FileAbsent}, GatewayState: File{State: FileAbsent}, PIDFile: File{State: FileAbsent}}
	if h.fd < 0 {
		return r // nothing was looked at: the outcome says why
	}
	if h.exists(h.newName()) {
		_ = unix.Unlinkat(h.fd, h.newName(), 0)
	}
	r.Marker.State, r.Marker.Data = h.load(marker.Filename)
	r.GatewayState.State, r.GatewayState.Data = h.load(marker.StateFilename)
	r.GatewayProcess = h.process(string(r.GatewayState.Data))
	r.PIDFile.State, r.PIDFile.Data = h.loadAtMost(marker.PIDFilename, maxPIDFile)
	r.PIDProcess = h.process(string(r.PIDFile.Data))
	return r
}

// process finds the process a record names, as program.sh's
// named_process does: the digits after the first "pid":, or the whole
// record if it is only digits (an older gateway.pid).
func (h *homeDir) process(record string) Process {
	digits := record
	if strings.Trim(record, "0123456789") != "" || record == "" {
		_, after, found := strings.Cut(record, `"pid":`)
		if !found {
			return Process{}
		}
		after = strings.TrimLeft(after, " \t")
		digits = after[:len(after)-len(strings.TrimLeft(after, "0123456789"))]
	}
	pid, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return Process{}
	}
	stat, _ := os.ReadFile(h.proc + "/" + digits + "/stat")
	line, _, _ := strings.Cut(string(stat), "\n")
	return Process{PID: pid, Stat: strings.TrimSpace(line)}
}
