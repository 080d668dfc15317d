# hermes-drain: the one program the operator runs inside a gateway container.
# It is fixed at compile time; every value arrives as an argument or on
# stdin, never as text pasted into this script. It reports its outcome on
# stdout (the exit status does not survive every exec path) and always exits
# 0. It runs under any POSIX sh (dash, busybox ash) and needs head, sync, mv,
# ln, rm, stat and date.
#
# Arguments, which every user of the container reads in /proc/PID/cmdline:
#   $1 op     project | clear | read
#   $2 home   HERMES_HOME; "" for the container's own $HERMES_HOME, else
#             /opt/data (exec inherits the image's and the pod's env)
#   $3 proc   where /proc is ("/proc" except in tests)
# Standard input, which only root can read, one value a line (it is read
# line by line and never to its end: some exec paths never deliver the end):
#   fence     fences the files it prints, so their content cannot forge a
#             line (96 random bits, never written anywhere)
#   nonce     names its private files (96 random bits)
#   token     the owner token (project, clear)
#   head      the marker's text before its time (project)
#   mid       its text between its time and its epoch (project)
#   tail      its text after its epoch (project)
#   profiles  the profile homes to put the marker in too, by name, separated
#             by spaces (project)
#   N         the number of lines of the foreign marker it may replace (0 for
#             none), then those N lines (project)
#
# Output: "hermes-drain/3 FENCE", "epoch E", "home H", then the root home's
# report, "profiles N" (how many profile homes there are), a report for each
# of the first maxProfiles, and "end FENCE". A home's report is "result WORD
# [MESSAGE]", then for the marker, gateway_state.json and gateway.pid "file
# NAME present|absent|directory|irregular|unreadable", a present file's first
# bytes (at most maxFile) followed by "\n--FENCE-- ok" (or "unreadable" if
# reading failed part way), each of the last two followed by "proc PID
# STATLINE" for the process it names ("proc -" when it names none). A profile
# home's report starts with "profile NAME". Words: written, refreshed,
# replaced, cleared, absent, foreign, read, error.
#
# A profile home is profiles/<name> in the root home, a directory that is no
# symbolic link, whose name is a profile's as upstream spells them
# ([a-z0-9][a-z0-9_-]{0,63}): tombstones and backups are not profiles. Each
# gets the same operation as the root home (project only where named).
#
# HERMES_HOME belongs to the gateway's user, not to us: anything in it may
# have been planted to make us (root, usually) write or read elsewhere. So
# nothing here follows a symbolic link or reads what is not a regular file,
# and every file it creates has a name no one can predict before it exists,
# created with O_EXCL. The home itself is refused if that user could move it
# (check_home).
#
# Every process it starts costs a fork and an exec in the gateway's
# container (and most of a call's CPU), so it starts as few as it can.

# First of all, before any command runs: exec runs this as root with the
# container's environment, whose PATH may start with directories the
# gateway's user can write (upstream's image names /opt/data/.local/bin, in
# that user's home). So commands are looked up in the system's directories
# only, and the variables that make a command load code or data from a path
# of the environment's choosing (the dynamic loader's, the C library's
# locale and charset paths) are removed before any is started. IFS and
# CDPATH go too: word splitting is the shell's default, and cd never looks
# elsewhere. (ENV and BASH_ENV are read by interactive shells only, and no
# shell is started by name.) What the environment does to /bin/sh itself,
# before this line, no exec can undo: the image's environment is trusted.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT GCONV_PATH LOCPATH NLSPATH IFS CDPATH
set -u
umask 022
op=$1 home=${2:-${HERMES_HOME:-/opt/data}} proc=$3
nl='
'
unexpected() {
	printf 'hermes-drain: %s on stdin\n' "$1"
	exit 0
}
{ IFS= read -r fence && IFS= read -r nonce && IFS= read -r token &&
	IFS= read -r head && IFS= read -r mid && IFS= read -r tail &&
	IFS= read -r write && IFS= read -r lines; } ||
	unexpected "no input"
# The nonce names files, profiles are named in them, and lines is counted:
# all must be as sent.
case $nonce in '' | *[!0-9a-f]*) unexpected "no nonce" ;; esac
case $write in *[!a-z0-9_\ -]*) unexpected "no profile names" ;; esac
case $lines in '' | *[!0-9]*) unexpected "no line count" ;; esac
replaceable= i=0
while [ $i -lt "$lines" ]; do
	IFS= read -r line || :
	[ $i -eq 0 ] || replaceable=$replaceable$nl
	replaceable=$replaceable$line
	i=$((i + 1))
done
# Names inside HERMES_HOME, which the program enters once (cd -P): a link
# swapped for one of its parents during the call cannot move it elsewhere.
marker=.drain_request.json
state=gateway_state.json
pidfile=gateway.pid
new=.drain_request.json.$nonce.new
old=.drain_request.json.$nonce.old
inside=
# maxFile bounds what is read of a file (profileMaxFile in a profile home,
# maxPIDFile of gateway.pid), and maxProfiles how many profile homes are
# looked into: a marker or a state file is a few hundred bytes, and a
# planted huge file or directory must not fill memory in the gateway's
# container (the operator also aborts a call that prints too much).
maxFile=65536 profileMaxFile=16384 maxPIDFile=4096 maxProfiles=32

# epoch sets e to boot_id:pid1_starttime as the gateway computes it:
# starttime is field 22 of /proc/1/stat, found after the LAST ')' because the
# command name may hold spaces and parentheses. (It sets a variable rather
# than printing, so that no subshell is forked to capture it.)
epoch() {
	e= boot= start=
	if [ -r "$proc/sys/kernel/random/boot_id" ]; then
		read -r boot < "$proc/sys/kernel/random/boot_id" || :
	fi
	if [ -r "$proc/1/stat" ]; then
		stat=
		{ read -r stat < "$proc/1/stat"; } 2>/dev/null || :
		case $stat in *")"*)
			set -f
			# shellcheck disable=SC2086 # splitting on whitespace is the point
			set -- ${stat##*)}
			set +f
			[ $# -ge 20 ] && start=${20}
		esac
	fi
	[ -n "$boot$start" ] && e=$boot:$start
}

# load reads file $1 (at most $2 bytes, else maxFile) into $text if it is a
# regular file, not a symbolic link; otherwise it returns 1 with $kind
# saying what is there, and $what saying it in words. The file is
# opened, then checked again through the descriptor, so a name swapped for a
# link between the checks and the open is caught: the descriptor is then not
# the file the name names. (A FIFO swapped in at that instant can still block
# the call until the operator's timeout; it cannot make us read or write.)
load() {
	text=
	if [ -L "$1" ]; then kind=irregular
	elif [ -d "$1" ]; then kind=directory
	elif [ ! -e "$1" ]; then kind=absent
	elif [ ! -f "$1" ]; then kind=irregular
	elif ! { command exec 4<"$1"; } 2>/dev/null; then kind=unreadable
	elif ! [ -f /dev/fd/4 ] || [ -L "$1" ] || ! [ /dev/fd/4 -ef "$1" ]; then
		exec 4<&-
		kind=irregular
	else
		kind=present
		text=$(head -c "${2:-$maxFile}" <&4) || kind=unreadable
		exec 4<&-
		[ $kind = present ] && return 0
	fi
	case $kind in
	irregular) what="a symbolic link or not a regular file" ;;
	directory) what="a directory" ;;
	unreadable) what="unreadable: cannot read it" ;;
	*) what=$kind
	esac
	return 1
}

# report prints the current home's report for result "$*" and ends it: a
# profile home's subshell exits, and the root home's report is followed by
# the profile homes'.
report() {
	if [ -n "$inside" ] && { [ -e "$new" ] || [ -L "$new" ]; }; then rm -f -- "$new"; fi
	printf 'result %s\n' "$*"
	if [ -z "$inside" ]; then # nothing was looked at: the result says why
		printf 'file marker absent\nfile state absent\nproc -\nfile pid absent\nproc -\n'
	else
		show marker "$marker"
		show state "$state"
		named_process "$text"
		show pid "$pidfile" $maxPIDFile
		named_process "$text"
	fi
	[ -z "$profile" ] || exit 0
	if [ -n "$inside" ]; then profiles; else printf 'profiles 0\n'; fi
	printf 'end %s\n' "$fence"
	exit 0
}

# profiles reports on each profile home in the root home (the current
# directory), acting on it in a subshell of its own. A name swapped for a
# link between the look and the cd is caught by where cd -P landed.
profiles() {
	count=0 listed=
	if [ -d profiles ] && ! [ -L profiles ]; then
		for dir in profiles/*; do
			name=${dir#profiles/}
			case $name in [a-z0-9]*) ;; *) continue ;; esac
			case $name in *[!a-z0-9_-]*) continue ;; esac
			[ ${#name} -le 64 ] && [ -d "$dir" ] && ! [ -L "$dir" ] || continue
			count=$((count + 1))
			[ $count -gt $maxProfiles ] || listed="$listed $name"
		done
	fi
	printf 'profiles %s\n' $count
	for profile in $listed; do
		printf 'profile %s\n' "$profile"
		(
			home=$root/profiles/$profile replaceable= maxFile=$profileMaxFile
			if ! cd -P -- "profiles/$profile" 2>/dev/null || [ "$PWD" != "$home" ]; then
				inside=
				report error "$home is not a directory (gone, or a symbolic link)"
			fi
			case $op in project)
				case " $write " in *" $profile "*) ;; *) op=read ;; esac
			esac
			act
		)
	done
}

# show prints file $2 under the name $1 (at most $3 bytes of it), leaving
# its bytes in $text.
show() {
	if load "$2" "${3:-}"; then
		printf 'file %s present\n%s\n--%s-- ok\n' "$1" "$text" "$fence"
	elif [ "$kind" = unreadable ]; then
		printf 'file %s present\n\n--%s-- unreadable\n' "$1" "$fence"
	else
		printf 'file %s %s\n' "$1" "$kind"
	fi
}

# named_process prints the /proc stat line of the process that the record
# $1 names (its first "pid":, or all of it if it is only digits, as an older
# gateway.pid is), so the operator can tell a live gateway from a file a
# dead one left behind (start_time, field 22, catches a reused PID). The
# operator checks the PID against its own parse of the record.
named_process() {
	case $1 in
	'' | *[!0-9]*)
		pid=${1#*\"pid\":}
		if [ "$pid" = "$1" ]; then
			printf 'proc -\n'
			return
		fi
		pid=${pid#"${pid%%[!	 ]*}"}
		pid=${pid%%[!0-9]*}
		;;
	*) pid=$1
	esac
	line=
	[ -n "$pid" ] && { read -r line < "$proc/$pid/stat"; } 2>/dev/null
	printf 'proc %s %s\n' "${pid:--}" "$line"
}

# write_new writes the marker for time $now and epoch $e to $new, a name no one can have
# planted (the nonce is nowhere before the file exists: not in any process's
# argv, and stdin is root's), created with O_EXCL (noclobber), and flushes it
# to disk before it is linked or renamed into place: after a crash the marker
# is whole or absent, never empty.
write_new() {
	if [ -e "$new" ] || [ -L "$new" ]; then return 1; fi
	set -C
	{ command exec 3>"$new"; } 2>/dev/null || { set +C; return 1; }
	set +C
	# noclobber checks with stat before it opens with O_EXCL, and opens an
	# existing file that is not regular (a FIFO or device planted at this
	# instant, which takes guessing the nonce) instead of failing: write
	# only into the regular file just created.
	if ! [ -f /dev/fd/3 ] || [ -L "$new" ] || ! [ /dev/fd/3 -ef "$new" ]; then
		exec 3>&-
		return 1
	fi
	printf '%s%s%s%s%s' "$head" "$now" "$mid" "$e" "$tail" >&3 || { exec 3>&-; return 1; }
	exec 3>&-
	sync -- "$new" 2>/dev/null
}

# check_home refuses a HERMES_HOME that anyone but root, or the user this
# runs as, could swap for a link to elsewhere: exec runs as root, and the
# gateway's user would choose where root writes and what it reads (say
# HERMES_HOME=/data/.hermes with /data theirs). The rule, for the home and
# every directory above it:
# - none is a symbolic link: a link leads wherever it points at the time,
#   through directories this cannot judge;
# - each directory above the home is root's (or ours) and writable by no one
#   else, since whoever may write a directory may rename what it holds and
#   put a link in its place. A sticky directory (/tmp) lets others create
#   but not rename what they do not own: there the entry below must be
#   root's or ours.
# What the rule accepts only root or we can change, so it still holds when
# the program enters the home just after.
check_home() {
	set -- /
	walked= rest=${home#/}
	while [ -n "$rest" ]; do
		seg=${rest%%/*}
		rest=${rest#"$seg"}
		rest=${rest#/}
		[ -n "$seg" ] || continue
		walked=$walked/$seg
		[ -L "$walked" ] && report error "HERMES_HOME $home: $walked is a symbolic link: refusing it"
		[ -d "$walked" ] || report error "HERMES_HOME $home is not a directory"
		set -- "$@" "$walked"
	done
	[ $# -gt 1 ] || return 0
	# One stat for all: "uid:raw mode in hex" a line.
	modes=$(stat -c '%u:%f' -- "$@" 2>/dev/null) ||
		report error "HERMES_HOME $home: cannot tell who may change the directories above it: refusing it"
	above=
	for dir do
		uid=${modes%%:*} modes=${modes#*:}
		mode=${modes%%[!0-9a-f]*} modes=${modes#"$mode"$nl}
		[ -n "$mode" ] || report error "HERMES_HOME $home: cannot tell who may change the directories above it: refusing it"
		# 0x12: writable by group or others; 0x200: sticky.
		if [ -n "$above" ] && ! { ours "$above_uid" "$above" && {
			[ $((0x$above_mode & 0x12)) -eq 0 ] ||
				{ [ $((0x$above_mode & 0x200)) -ne 0 ] && ours "$uid" "$dir"; }
		}; }; then
			report error "HERMES_HOME $home: $above lets a user other than root replace $dir: refusing it"
		fi
		above=$dir above_uid=$uid above_mode=$mode
	done
}

# ours says whether $1, the owner of $2, is root or the user this runs as.
ours() { [ "$1" = 0 ] || [ -O "$2" ]; }

# act does the operation in the current home, and reports.
act() {
case $op in
project)
	case $e in *[!0-9A-Za-z:-]*) report error "epoch $e has unexpected characters" ;; esac
	if load "$marker"; then
		case $text in
		*"$token"*) word=refreshed ;;
		*)
			[ -n "$replaceable" ] && [ "$text" = "$replaceable" ] || report foreign
			word=replaced
		esac
	elif [ "$kind" != absent ]; then
		report error "$home/$marker is $what: refusing to replace it"
	else
		word=written
	fi
	# Stamped with this container's clock, the gateway's: upstream's
	# expiry is measured on it.
	now=$(date -u +%Y-%m-%dT%H:%M:%S.000000+00:00) || report error "cannot read the container's clock"
	write_new || report error "cannot write $home/$marker: cannot create a file in $home (read-only or full?)"
	if [ $word = written ]; then
		# Created, never replaced: the link fails if a marker appeared
		# since it was read, which is then left alone.
		if ! ln -T -- "$new" "$marker" 2>/dev/null; then
			[ -e "$marker" ] || [ -L "$marker" ] && report foreign
			report error "cannot create $home/$marker"
		fi
	else
		# Replaced whole by a rename. A marker written between the read
		# and the rename would be lost: the read-back shows whose marker
		# stands, and the operator counts a target only when it is ours.
		mv -f -T -- "$new" "$marker" 2>/dev/null || report error "cannot replace $home/$marker"
	fi
	report $word
	;;
clear)
	if ! load "$marker"; then
		[ "$kind" = absent ] && report absent
		report error "$home/$marker is $what: refusing to remove it"
	fi
	case $text in *"$token"*) ;; *) report foreign ;; esac
	# Taken away under a private name and checked again before it is
	# removed: a marker someone wrote since the read is put back, not
	# destroyed (unless a newer one took its place meanwhile).
	mv -f -T -- "$marker" "$old" 2>/dev/null || report error "cannot remove $home/$marker"
	if load "$old"; then
		case $text in *"$token"*)
			rm -f -- "$old" 2>/dev/null || report error "cannot remove $home/$old"
			report cleared
		esac
	fi
	ln -T -- "$old" "$marker" 2>/dev/null
	rm -f -- "$old" 2>/dev/null
	report foreign
	;;
read)
	report read
	;;
esac
report error "unknown operation $op"
}

printf 'hermes-drain/3 %s\n' "$fence"
epoch
printf 'epoch %s\nhome %s\n' "$e" "$home"
text= profile=

case $home in /?*) ;; *) report error "HERMES_HOME $home is not an absolute path" ;; esac
check_home
cd -P -- "$home" 2>/dev/null || report error "HERMES_HOME $home is not a directory"
inside=1 root=$PWD
act
