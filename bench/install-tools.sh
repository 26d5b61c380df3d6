#!/bin/sh
# Installs the reference tools that `make bench` compares p2p against, from Debian's
# packages, when they are missing: aria2 (aria2c), opentracker, nginx, wrk, mktorrent
# and curl. As root with apt-get it installs the missing packages (one line says
# which); otherwise it prints one line per missing tool, and the benchmark skips the
# rows that need it with the reason. It never fails: exit status 0 whatever happens.
#
# Services are not started: a package's post-install script would otherwise start
# nginx (port 80) or opentracker as a system daemon listening on every interface, so
# while apt-get runs, a policy-rc.d that refuses every start is put in place unless
# the system already has one.
#
# usage: sh bench/install-tools.sh [--dry-run]   (--dry-run: say what it would install)

dry_run=
[ "${1:-}" = "--dry-run" ] && dry_run=1

# tool:package pairs.
pairs="aria2c:aria2 opentracker:opentracker nginx:nginx wrk:wrk mktorrent:mktorrent curl:curl"

# Sets `todo` to the pairs whose tool is not on PATH; a tool installed outside PATH
# (nginx in /usr/sbin for a user without it on PATH) gets its own line with "say",
# not an install.
find_missing() {
  todo=
  for pair in $pairs; do
    tool=${pair%%:*}
    command -v "$tool" >/dev/null 2>&1 && continue
    if [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ]; then
      [ -n "${1:-}" ] && echo "bench: $tool is in /usr/sbin, not on PATH: add /usr/sbin to PATH, or its rows are skipped"
    else
      todo="$todo $pair"
    fi
  done
}

find_missing say
[ -z "$todo" ] && exit 0
packages=
for pair in $todo; do packages="$packages ${pair#*:}"; done

if [ "$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if [ -n "$dry_run" ]; then
    echo "bench: would install$packages (apt-get install --no-install-recommends)"
    exit 0
  fi
  echo "bench: installing$packages (apt-get install --no-install-recommends)"
  log=$(mktemp /tmp/bench-apt.XXXXXX) || log=/dev/null
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d &&
      policy=/usr/sbin/policy-rc.d
  fi
  limit=
  command -v timeout >/dev/null 2>&1 && limit="timeout 900"
  install() {
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    DEBIAN_FRONTEND=noninteractive $limit apt-get install -y -q --no-install-recommends \
      $packages >>"$log" 2>&1
  }
  # Package lists may be missing or stale (a fresh container): update once, try again.
  install || { $limit apt-get update -q >>"$log" 2>&1; install; } ||
    echo "bench: apt-get could not install$packages: $(tail -n 1 "$log")"
  [ -n "$policy" ] && rm -f "$policy"
  [ "$log" != /dev/null ] && rm -f "$log"
  find_missing
fi

for pair in $todo; do
  echo "bench: ${pair%%:*} is missing (apt-get install ${pair#*:}); its benchmark rows are skipped"
done
exit 0
