# Shared by Scripts/test-systemd-boot and Scripts/test-fleet (sourced, not run): the cached Debian
# rootfs, booting a copy of it under systemd-nspawn, and stopping it. The caller defines log and
# die, and runs as root.

containers_suite=bookworm
# Everything the static binary links (besides libc, libstdc++, libm, which minbase has), Serf for
# the spawned agent, fusermount3, getfattr, and systemd itself.
containers_include=systemd,systemd-sysv,dbus,fuse3,serf,libsqlite3-0,libsodium23,libfuse3-3,attr

# The first bookworm mirror of this host's apt sources (deb822 or one-line format).
containers_find_mirror() {
    local f suite=$containers_suite
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
            { uris = ""; suites = ""; types = ""
              for (i = 1; i <= NF; i++) {
                  if ($i ~ /^URIs:/)   { v = $i; sub(/^URIs:[ \t]*/, "", v); uris = v }
                  if ($i ~ /^Suites:/) { v = $i; sub(/^Suites:[ \t]*/, "", v); suites = " " v " " }
                  if ($i ~ /^Types:/)  { types = " " $i " " }
              }
              if (types ~ / deb / && index(suites, " " suite " ") && uris ~ /^https?:/) { split(uris, u, " "); print u[1]; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        awk -v suite="$suite" '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite && $i ~ /^https?:/) { print $i; exit } }' "$f"
    done
}

# Installs systemd-container and debootstrap when missing and checks the other tools.
containers_tools() {
    local missing=() tool
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
            { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
            die "apt-get could not install ${missing[*]} (needed to boot the test containers)"
    fi
    for tool in systemd-nspawn debootstrap nsenter wget python3 systemctl; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
}

# containers_rootfs CACHE MIRROR: makes sure CACHE/rootfs-bookworm holds a complete debootstrapped
# rootfs (built once; a marker names the packages it has) and sets containers_rootfs_cache.
containers_rootfs() {
    local cache=$1 mirror=$2 suite=$containers_suite include=$containers_include
    containers_rootfs_cache=$cache/rootfs-$suite
    local marker=$containers_rootfs_cache/.kvgossip-rootfs-complete
    if [[ -z $mirror ]]; then
        mirror=$(containers_find_mirror | head -n 1)
        [[ -n $mirror ]] || mirror=http://deb.debian.org/debian
    fi
    mirror=${mirror%/}
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9   # one builder at a time; a second run waits, then finds the marker
    if [[ -f $marker && $(cat "$marker") == "$include" ]]; then
        log "reusing the cached rootfs $containers_rootfs_cache"
    else
        log "building the rootfs cache with debootstrap ($suite, $mirror): once, about a minute"
        if ! wget -q -T 15 --tries=1 --spider "$mirror/dists/$suite/Release"; then
            die "cannot reach the Debian mirror $mirror (wget $mirror/dists/$suite/Release failed).
  This test boots a real systemd in Debian $suite containers and needs network access to the
  mirror once, to fill $containers_rootfs_cache; later runs reuse it. Give it access, or pass
  --mirror URL (or KVGOSSIP_DEBIAN_MIRROR) for a reachable mirror."
        fi
        rm -rf --one-file-system "$containers_rootfs_cache" "$containers_rootfs_cache.partial"
        if ! debootstrap --variant=minbase --include="$include" "$suite" "$containers_rootfs_cache.partial" "$mirror" >"$cache/debootstrap.log" 2>&1; then
            tail -n 20 "$cache/debootstrap.log" >&2
            die "debootstrap of $suite from $mirror failed (log: $cache/debootstrap.log).
  Without network access to the Debian mirror this test cannot build its rootfs cache."
        fi
        find "$containers_rootfs_cache.partial/var/cache/apt/archives" -name '*.deb' -delete 2>/dev/null || true
        mv "$containers_rootfs_cache.partial" "$containers_rootfs_cache"
        printf '%s' "$include" >"$marker"
        log "rootfs cache ready ($(du -sh "$containers_rootfs_cache" | cut -f1))"
    fi
    flock -u 9
    exec 9>&-
}

# containers_copy DEST HOSTNAME: a fresh copy of the cached rootfs.
containers_copy() {
    cp -a --reflink=auto "$containers_rootfs_cache" "$1"
    rm -f "$1/.kvgossip-rootfs-complete"
    echo "$2" >"$1/etc/hostname"
}

# Alive and not a zombie.
running() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# containers_boot ROOTFS MACHINE LOG NSPAWN-OPTION...: boots the rootfs in the background and waits
# for the container's systemd to start. Sets booted_nspawn (nspawn's PID, a child of this shell)
# and booted_leader (the container's PID 1 as the host sees it). --register=no --keep-unit: this
# host has no system bus.
containers_boot() {
    local rootfs=$1 machine=$2 console=$3
    shift 3
    systemd-nspawn -D "$rootfs" -b --register=no --keep-unit --bind=/dev/fuse --machine="$machine" \
        --console=read-only "$@" </dev/null >"$console" 2>&1 3>&- 4>&- 9>&- &
    booted_nspawn=$!
    booted_leader=""
    local _
    for _ in $(seq 1 200); do
        running "$booted_nspawn" || die "systemd-nspawn exited while booting $machine (console: $console)"
        booted_leader=$(pgrep -P "$booted_nspawn" | head -n 1 || true)
        [[ -n $booted_leader && $(cat "/proc/$booted_leader/comm" 2>/dev/null) == systemd ]] && return 0
        booted_leader=""
        sleep 0.1
    done
    die "no systemd inside $machine after 20 s"
}

# containers_wait_running NSPAWN LEADER: waits until the container's systemd says running or
# degraded (60 s at most) and prints that state.
containers_wait_running() {
    local state="" _
    for _ in $(seq 1 600); do
        running "$1" || die "the container stopped while booting"
        state=$(nsenter -t "$2" -a systemctl is-system-running 2>/dev/null || true)
        [[ $state == running || $state == degraded ]] && { echo "$state"; return 0; }
        [[ $state == maintenance || $state == stopping ]] && die "the container's systemd is $state"
        sleep 0.1
    done
    die "the container did not finish booting within 60 s (state: ${state:-unknown})"
}

# containers_stop NSPAWN LEADER: SIGTERM makes nspawn ask the container's systemd to power off;
# SIGKILL both by PID after 15 s.
containers_stop() {
    local nspawn=$1 leader=$2 _
    running "$nspawn" || return 0
    kill -TERM "$nspawn" 2>/dev/null
    for _ in $(seq 1 150); do running "$nspawn" || break; sleep 0.1; done
    if running "$nspawn"; then
        log "nspawn $nspawn still running after 15 s: SIGKILL (container init ${leader:-?})"
        [[ -n $leader ]] && running "$leader" && kill -KILL "$leader" 2>/dev/null
        kill -KILL "$nspawn" 2>/dev/null
    fi
    wait "$nspawn" 2>/dev/null || true
}
