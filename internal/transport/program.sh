# hermes-drain: the one program the operator runs inside a gateway container.
# It is fixed at compile time; every value arrives as an argument, never as
# text pasted into this script, and nothing is read from stdin. It reports
# its outcome on stdout (the exit status does not survive every exec path)
# and always exits 0.
#
#   $1 op         project | clear | read
#   $2 home       HERMES_HOME
#   $3 proc       where /proc is ("/proc" except in tests)
#   $4 nonce      fences the files it prints, so their content cannot forge a line
#   project:  $5 owner token  $6 foreign marker it may replace ("" for none)
#             $7 marker text before the epoch  $8 marker text after it
#   clear:    $5 owner token
#
# Output: "hermes-drain/1 NONCE", "epoch E", "result WORD [MESSAGE]", then
# for the marker and gateway_state.json "file NAME present|absent|directory|
# unreadable", a present file's bytes followed by "\n--NONCE-- ok" (or
# "unreadable" if reading it failed part way), and "end NONCE". Words:
# written, refreshed, replaced, cleared, absent, foreign, read, error.
#
# Every process it starts costs a fork and an exec in the gateway's
# container (and most of a call's CPU), so it starts as few as it can.
set -u
umask 022
op=$1 home=$2 proc=$3 nonce=$4
marker=$home/.drain_request.json
state=$home/gateway_state.json

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

report() {
	printf 'result %s\n' "$*"
	show marker "$marker"
	show state "$state"
	printf 'end %s\n' "$nonce"
	exit 0
}

show() {
	if [ -d "$2" ]; then
		printf 'file %s directory\n' "$1"
	elif [ ! -e "$2" ]; then
		printf 'file %s absent\n' "$1"
	elif [ ! -r "$2" ]; then
		printf 'file %s unreadable\n' "$1"
	else
		printf 'file %s present\n' "$1"
		if cat -- "$2" 2>/dev/null; then read=ok; else read=unreadable; fi
		printf '\n--%s-- %s\n' "$nonce" "$read"
	fi
}

# write_marker replaces the marker atomically: a temp file in the same
# directory, then a rename, so the gateway never reads half a marker.
write_marker() {
	tmp=$home/.drain_request.json.tmp.$$
	if printf '%s%s%s' "$1" "$e" "$2" > "$tmp" 2>/dev/null && mv -f -- "$tmp" "$marker" 2>/dev/null; then
		return 0
	fi
	rm -f -- "$tmp" 2>/dev/null
	return 1
}

printf 'hermes-drain/1 %s\n' "$nonce"
epoch
printf 'epoch %s\n' "$e"

[ -d "$home" ] || report error "HERMES_HOME $home is not a directory"
[ -d "$marker" ] && report error "$marker is a directory"

# Writing or removing goes through no symbolic link: whatever it points to
# is not ours to replace.
case $op in project|clear)
	[ -L "$marker" ] && report error "$marker is a symbolic link: refusing to replace or remove it"
esac

case $op in
project)
	token=$5 replaceable=$6
	case $e in *[!0-9A-Za-z:-]*) report error "epoch $e has unexpected characters" ;; esac
	word=written
	if [ -e "$marker" ] || [ -L "$marker" ]; then
		current=$(cat -- "$marker" 2>/dev/null) || report error "cannot read $marker"
		case $current in
		*"$token"*) word=refreshed ;;
		*)
			if [ -n "$replaceable" ] && [ "$current" = "$replaceable" ]; then
				word=replaced
			else
				report foreign
			fi
		esac
	fi
	write_marker "$7" "$8" || report error "cannot write $marker (read-only or full?)"
	report "$word"
	;;
clear)
	token=$5
	[ -e "$marker" ] || [ -L "$marker" ] || report absent
	current=$(cat -- "$marker" 2>/dev/null) || report error "cannot read $marker"
	case $current in
	*"$token"*) rm -f -- "$marker" 2>/dev/null || report error "cannot remove $marker"
		report cleared ;;
	esac
	report foreign
	;;
read)
	report read
	;;
esac
report error "unknown operation $op"
