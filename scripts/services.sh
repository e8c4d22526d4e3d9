#!/usr/bin/env bash
# RabbitMQ, Redis and PostgreSQL for promiscuous, from Debian's packages, on loopback.
#
#   scripts/services.sh up                 install what is missing, start all, wait until ready
#   scripts/services.sh down               stop all
#   scripts/services.sh status             say what runs
#   scripts/services.sh restart-rabbitmq   stop and start the RabbitMQ application (tests use it)
#   scripts/services.sh env                print the URLs as shell exports
#
# Ports: PROMISCUOUS_AMQP_PORT (5672), PROMISCUOUS_REDIS_PORT (6379); PostgreSQL uses its
# Debian cluster's port (5432), listening on localhost only (Debian's default).
set -euo pipefail

AMQP_PORT=${PROMISCUOUS_AMQP_PORT:-5672}
REDIS_PORT=${PROMISCUOUS_REDIS_PORT:-6379}
RUN_DIR=${PROMISCUOUS_RUN_DIR:-/tmp/promiscuous-services}
NODE=rabbit@localhost

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
    command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(pg_version)" ] || missing+=(postgresql)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} from Debian's packages"
    as_root apt-get update -qq
    # The packages' own init scripts are not used (no init system here): we start the servers.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

wait_for() { # seconds, description, command...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "$what did not become ready"
            return 1
        fi
        sleep 0.5
    done
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }

redis_up() {
    if redis_ready 2>/dev/null; then return 0; fi
    mkdir -p "$RUN_DIR"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --save '' --appendonly no --dir "$RUN_DIR" \
        --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log"
    wait_for 30 "redis on 127.0.0.1:$REDIS_PORT" redis_ready
    log "redis ready on 127.0.0.1:$REDIS_PORT"
}

rabbitmqctl_() { as_root rabbitmqctl -n "$NODE" "$@"; }
rabbit_ready() { rabbitmqctl_ -q await_startup --timeout 5; }

rabbit_configure() {
    as_root mkdir -p /etc/rabbitmq
    as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null <<CONF
NODENAME=$NODE
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$AMQP_PORT
export ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
}

rabbit_up() {
    rabbit_configure
    if rabbit_ready 2>/dev/null; then return 0; fi
    log "starting rabbitmq on 127.0.0.1:$AMQP_PORT"
    as_root rabbitmq-server -detached
    wait_for 120 "rabbitmq" rabbit_ready
    log "rabbitmq ready on 127.0.0.1:$AMQP_PORT"
}

pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1; }
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }

postgres_up() {
    local version
    version=$(pg_version)
    pg_lsclusters -h 2>/dev/null | grep -q "^$version main" || as_root pg_createcluster "$version" main >/dev/null
    if ! pg_ready 2>/dev/null; then
        as_root pg_ctlcluster "$version" main start
        wait_for 60 "postgresql" pg_ready
    fi
    # A login role for the tests (password auth over TCP on loopback).
    as_root su postgres -c "psql -q -v ON_ERROR_STOP=1 -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'promiscuous') THEN CREATE ROLE promiscuous LOGIN CREATEDB PASSWORD 'promiscuous'; END IF; END \\\$\\\$;\"" >/dev/null
    log "postgresql $version ready on 127.0.0.1:5432"
}

urls() {
    echo "export PROMISCUOUS_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
    echo "export PROMISCUOUS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/"
    echo "export PROMISCUOUS_POSTGRES_URL=postgres://promiscuous:promiscuous@127.0.0.1:5432/postgres"
}

case "${1:-}" in
up)
    install_missing
    redis_up
    rabbit_up
    postgres_up
    ;;
down)
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rabbitmqctl_ stop >/dev/null 2>&1 || true
    [ -n "$(pg_version)" ] && as_root pg_ctlcluster "$(pg_version)" main stop >/dev/null 2>&1 || true
    log "stopped"
    ;;
status)
    if redis_ready 2>/dev/null; then echo "redis: up (127.0.0.1:$REDIS_PORT)"; else echo "redis: down"; fi
    if rabbit_ready 2>/dev/null; then echo "rabbitmq: up (127.0.0.1:$AMQP_PORT)"; else echo "rabbitmq: down"; fi
    if pg_ready 2>/dev/null; then echo "postgresql: up (127.0.0.1:5432)"; else echo "postgresql: down"; fi
    ;;
restart-rabbitmq)
    rabbitmqctl_ -q stop_app
    rabbitmqctl_ -q start_app
    wait_for 60 "rabbitmq" rabbit_ready
    ;;
env)
    urls
    ;;
*)
    echo "usage: $0 up|down|status|restart-rabbitmq|env" >&2
    exit 2
    ;;
esac
