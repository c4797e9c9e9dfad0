# Sourced by .ci/run: install and start the servers the tests talk to.
# Each service exports the variable its tests read (VIGIL_TEST_POSTGRES_URL,
# VIGIL_TEST_REDIS_URL, ...).

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

# A TCP port on 127.0.0.1 that nothing listens on, from $1 upwards.
free_port() {
    local port="${1:-55432}"
    while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    echo "$port"
}

# PostgreSQL for vigil-store's behaviour suite: a throwaway cluster owned by
# a non-root user (initdb refuses root), trust auth on 127.0.0.1 only.
start_postgres() {
    if [ -n "${VIGIL_TEST_POSTGRES_URL:-}" ]; then
        echo "postgres: using VIGIL_TEST_POSTGRES_URL from the environment"
        return
    fi
    apt_install postgresql
    local bindir
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$bindir" ]; then
        echo "postgres: no server binaries under /usr/lib/postgresql" >&2
        return 1
    fi
    local port root run_as=()
    port="$(free_port 55432)"
    root="$(mktemp -d /tmp/vigil-ci-pg.XXXXXX)"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$root"
        run_as=(runuser -u postgres --)
    fi
    "${run_as[@]}" "$bindir/initdb" -D "$root/data" -U postgres --auth=trust -E UTF8 \
        >"$root/initdb.log" 2>&1 || { cat "$root/initdb.log" >&2; return 1; }
    "${run_as[@]}" "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
        -o "-p $port -k $root -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$root/server.log" >&2; return 1; }
    local tries=0
    until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "postgres: not ready after 30 s" >&2
            cat "$root/server.log" >&2
            return 1
        fi
        sleep 0.5
    done
    export VIGIL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "postgres: ready on 127.0.0.1:$port ($("$bindir/postgres" --version))"
}

# Redis for the gateway's shared prediction cache: a throwaway server on
# 127.0.0.1 without persistence.
start_redis() {
    if [ -n "${VIGIL_TEST_REDIS_URL:-}" ]; then
        echo "redis: using VIGIL_TEST_REDIS_URL from the environment"
        return
    fi
    apt_install redis-server
    local port root
    port="$(free_port 56379)"
    root="$(mktemp -d /tmp/vigil-ci-redis.XXXXXX)"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$root" --daemonize yes --logfile "$root/redis.log" \
        || { cat "$root/redis.log" >&2; return 1; }
    local tries=0
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "redis: not ready after 30 s" >&2
            cat "$root/redis.log" >&2
            return 1
        fi
        sleep 0.5
    done
    export VIGIL_TEST_REDIS_URL="redis://127.0.0.1:$port"
    echo "redis: ready on 127.0.0.1:$port ($(redis-server --version | cut -d' ' -f3))"
}

# Prometheus Alertmanager for vigil-metrics' alarm notifications: a
# throwaway instance on 127.0.0.1 with clustering off, a receiver that sends
# nowhere and a temp storage dir.
start_alertmanager() {
    if [ -n "${VIGIL_TEST_ALERTMANAGER_URL:-}" ]; then
        echo "alertmanager: using VIGIL_TEST_ALERTMANAGER_URL from the environment"
        return
    fi
    apt_install prometheus-alertmanager curl
    local bin=/usr/bin/prometheus-alertmanager
    if [ ! -x "$bin" ]; then
        echo "alertmanager: $bin missing after installing prometheus-alertmanager" >&2
        return 1
    fi
    local port root
    port="$(free_port 59093)"
    root="$(mktemp -d /tmp/vigil-ci-alertmanager.XXXXXX)"
    cat >"$root/alertmanager.yml" <<'YAML'
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
YAML
    nohup "$bin" --config.file="$root/alertmanager.yml" --storage.path="$root/data" \
        --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
        >"$root/alertmanager.log" 2>&1 &
    echo $! >"$root/alertmanager.pid"
    local tries=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/ready" 2>/dev/null)" = "200" ]; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "alertmanager: not ready after 30 s" >&2
            cat "$root/alertmanager.log" >&2
            return 1
        fi
        sleep 0.5
    done
    export VIGIL_TEST_ALERTMANAGER_URL="http://127.0.0.1:$port"
    echo "alertmanager: ready on 127.0.0.1:$port ($("$bin" --version 2>&1 | head -n 1))"
}

# The Prometheus server and promtool, for tests that check Vigil's exposition
# and rules against the real tools; nothing is started here.
start_prometheus_tools() {
    apt_install prometheus
    local prometheus=/usr/bin/prometheus promtool=/usr/bin/promtool
    if [ ! -x "$prometheus" ] || [ ! -x "$promtool" ]; then
        echo "prometheus: $prometheus or $promtool missing after installing prometheus" >&2
        return 1
    fi
    export VIGIL_TEST_PROMETHEUS_BIN="$prometheus"
    export VIGIL_TEST_PROMTOOL="$promtool"
    echo "prometheus: $("$prometheus" --version 2>&1 | head -n 1); promtool at $promtool"
}

start_services() {
    start_postgres
    start_redis
    start_alertmanager
    start_prometheus_tools
}
