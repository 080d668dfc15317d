#!/bin/sh
# gateway-slots runs the test gateway as upstream's image runs standalone
# profiles under s6: one gateway process per home, the root home's and each
# listed profile's (each a profile home with a SOUL.md), every one watching
# only its own marker. Usage: gateway-slots PROFILE... [-- GATEWAYSIM FLAGS]
# It stays PID 1 and reaps its gateways, as s6 does: a gateway killed is
# gone, not a zombie that looks alive.
home=${HERMES_HOME:-/opt/data}
profiles=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	profiles="$profiles $1"
	shift
done
[ $# -gt 0 ] && shift
pids=
for p in $profiles; do
	mkdir -p "$home/profiles/$p" && : > "$home/profiles/$p/SOUL.md" || exit 1
	/usr/local/bin/gatewaysim --own-home-only --homes "$home/profiles/$p" "$@" &
	pids="$pids $!"
done
/usr/local/bin/gatewaysim --own-home-only --homes "$home" "$@" &
pids="$pids $!"
trap 'kill $pids 2>/dev/null; exit 0' TERM INT
while :; do
	wait
	# every gateway has exited (wait returns early on a trapped signal)
	case $(jobs -p) in '') sleep 3600 ;; esac
done
