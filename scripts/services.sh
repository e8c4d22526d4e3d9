#!/usr/bin/env bash
# RabbitMQ, Redis, PostgreSQL and MariaDB for promiscuous, from Debian's packages, on loopback; and
# Chromium (/usr/bin/chromium, Debian's package) for the browser tests, installed by `up` when
# missing but never started here (the tests launch it).
#
#   scripts/services.sh up                 install what is missing, start all, wait until ready
#   scripts/services.sh down               stop all
#   scripts/services.sh status             say what runs
#   scripts/services.sh restart-rabbitmq   stop and start the RabbitMQ application (tests use it)
#   scripts/services.sh env                print the URLs (and TLS CA files) as shell exports
#   scripts/services.sh cluster up|down|status
#                                          a three-node RabbitMQ cluster beside the single node
#                                          (see "cluster" below); `env` then also prints its URLs
#   scripts/services.sh cluster kill N     kill -9 node N (1..3), as a crash
#   scripts/services.sh cluster start N    start node N again (it rejoins the cluster)
#   scripts/services.sh cluster leader Q   print the number of the node leading quorum queue Q
#   scripts/services.sh sentinel up|down|status
#                                          Redis Sentinel: a primary, a replica and three
#                                          sentinels beside the single Redis (see "Redis
#                                          Sentinel" below); `env` then also prints its URL
#   scripts/services.sh sentinel primary   print the number of the primary node (1 or 2)
#   scripts/services.sh sentinel kill N    kill -9 Redis node N, as a crash
#   scripts/services.sh sentinel start N   start node N again, as a replica of the primary
#
# Ports: PROMISCUOUS_AMQP_PORT (5672), PROMISCUOUS_REDIS_PORT (6379), and with TLS
# PROMISCUOUS_AMQPS_PORT (5671) and PROMISCUOUS_REDISS_PORT (6380, the same Redis server);
# PostgreSQL uses its Debian cluster's port (5432), listening on localhost only (Debian's default).
# MariaDB: a server of our own (not Debian's system instance), data under $RUN_DIR/mariadb,
# on 127.0.0.1:PROMISCUOUS_MARIADB_PORT (3306), user promiscuous / promiscuous.
#
# TLS: a local CA and a server certificate for 127.0.0.1 and localhost are made under
# $RUN_DIR/tls (ca.pem, server.pem, server-key.pem), with a second, unrelated CA (wrong-ca.pem)
# for tests that must see a certificate refused; made once, again only if one is missing.
#
# RabbitMQ users: besides guest, one user per application used by the tests and examples (APPS
# below), user X with password promiscuous_X, allowed only what app X needs (see rabbit_users).
set -euo pipefail

AMQP_PORT=${PROMISCUOUS_AMQP_PORT:-5672}
AMQPS_PORT=${PROMISCUOUS_AMQPS_PORT:-5671}
REDIS_PORT=${PROMISCUOUS_REDIS_PORT:-6379}
REDISS_PORT=${PROMISCUOUS_REDISS_PORT:-6380}
MARIADB_PORT=${PROMISCUOUS_MARIADB_PORT:-3306}
RUN_DIR=${PROMISCUOUS_RUN_DIR:-/tmp/promiscuous-services}
TLS_DIR=$RUN_DIR/tls
NODE=rabbit@localhost
# The applications with a RabbitMQ user of their own (user X, password promiscuous_X). Names
# are plain words: they are put into permission regexes as they are.
APPS=(crowdtap crowdtap_members trust_a trust_b trust_members)

log() { printf 'services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
    command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(pg_version)" ] || missing+=(postgresql)
    command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # lapin's rustls-native-certs refuses to make any TLS connection when the system has no root
    # certificate at all, even with a CA file of its own.
    [ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
    # The browser tests (tests/browser/) drive Debian's Chromium, never a downloaded build. Its
    # fonts come with it (libfontconfig1 -> fontconfig-config -> fonts-dejavu-core).
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_install "${missing[@]}"
}

apt_install() { # packages...
    log "installing $* from Debian's packages"
    as_root apt-get update -qq
    # The packages' own init scripts are not used (no init system here): we start the servers.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
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

# Runs a command, showing its output only if it fails (openssl is chatty).
quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

tls_files_ok() {
    local f
    for f in ca.pem wrong-ca.pem server.pem server-key.pem; do
        [ -s "$TLS_DIR/$f" ] || return 1
    done
    openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" >/dev/null 2>&1
}

new_ca() { # file stem, common name
    quietly openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
        -keyout "$1-key.pem" -out "$1.pem"
}

# The CAs and the server certificate, made only if missing (or not matching each other). The CA
# keys are deleted once the server certificate is signed: all is made again if anything is lost.
tls_certs() {
    if tls_files_ok; then return 0; fi
    log "making a local CA and a server certificate (127.0.0.1, localhost) in $TLS_DIR"
    mkdir -p "$RUN_DIR"
    local tmp
    tmp=$(mktemp -d "$RUN_DIR/tls.XXXXXX")
    (
        cd "$tmp"
        new_ca ca "promiscuous test CA"
        new_ca wrong-ca "promiscuous unrelated CA"
        quietly openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
            -keyout server-key.pem -out server.csr
        printf '%s\n' 'subjectAltName = IP:127.0.0.1, DNS:localhost' \
            'basicConstraints = critical, CA:FALSE' \
            'keyUsage = critical, digitalSignature, keyEncipherment' \
            'extendedKeyUsage = serverAuth' >server.ext
        quietly openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -days 3650 -extfile server.ext -out server.pem
        rm -f ca-key.pem wrong-ca-key.pem ca.srl server.csr server.ext
        chmod 644 ca.pem wrong-ca.pem server.pem
        # Redis runs as this script's user (the owner); RabbitMQ as user rabbitmq (the group).
        as_root chgrp rabbitmq server-key.pem
        chmod 640 server-key.pem
    )
    chmod 755 "$tmp"
    rm -rf "$TLS_DIR"
    mv "$tmp" "$TLS_DIR"
}

# A TLS handshake that verifies the server's certificate with our CA (so an old certificate,
# from before the CA was made again, counts as not ready).
tls_handshake() { # port
    timeout 10 openssl s_client -connect "127.0.0.1:$1" -CAfile "$TLS_DIR/ca.pem" \
        -verify_return_error -brief </dev/null
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }
redis_tls_ready() {
    redis-cli --tls --cacert "$TLS_DIR/ca.pem" -h 127.0.0.1 -p "$REDISS_PORT" ping | grep -q PONG
}

# One server for both ports: TLS on REDISS_PORT (no client certificates asked for).
redis_tls_settings() {
    printf '%s\n' tls-cert-file "$TLS_DIR/server.pem" tls-key-file "$TLS_DIR/server-key.pem" \
        tls-ca-cert-file "$TLS_DIR/ca.pem" tls-auth-clients no tls-port "$REDISS_PORT"
}

redis_up() {
    if redis_ready 2>/dev/null; then
        if redis_tls_ready 2>/dev/null; then return 0; fi
        # Started without TLS (by an older version of this script) or with an old certificate:
        # Redis takes TLS settings at run time, so no restart.
        log "enabling TLS on the running redis (127.0.0.1:$REDISS_PORT)"
        local settings
        mapfile -t settings < <(redis_tls_settings)
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set "${settings[@]}" | grep -q OK
    else
        mkdir -p "$RUN_DIR"
        local settings=() name value
        while read -r name && read -r value; do settings+=("--$name" "$value"); done \
            < <(redis_tls_settings)
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
            --save '' --appendonly no --dir "$RUN_DIR" \
            --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log" "${settings[@]}"
        wait_for 30 "redis on 127.0.0.1:$REDIS_PORT" redis_ready
    fi
    wait_for 30 "redis TLS on 127.0.0.1:$REDISS_PORT" redis_tls_ready
    log "redis ready on 127.0.0.1:$REDIS_PORT and (TLS) 127.0.0.1:$REDISS_PORT"
}

rabbitmqctl_() { as_root rabbitmqctl -n "$NODE" "$@"; }
rabbit_ready() { rabbitmqctl_ -q await_startup --timeout 5; }
rabbit_tls_ready() { tls_handshake "$AMQPS_PORT"; }

rabbit_configure() {
    as_root mkdir -p /etc/rabbitmq
    as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null <<CONF
NODENAME=$NODE
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$AMQP_PORT
export ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
    # The plain listener comes from NODE_IP_ADDRESS/NODE_PORT above; this adds the TLS one (no
    # client certificates asked for). Read at boot only: see rabbit_up.
    as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null <<CONF
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
    # Partitioned subscriber queues route through a consistent-hash exchange. Written before
    # boot; a node already running without it gets it online (see rabbit_up).
    local plugins='[rabbitmq_consistent_hash_exchange].'
    if [ "$(cat /etc/rabbitmq/enabled_plugins 2>/dev/null)" != "$plugins" ]; then
        echo "$plugins" | as_root tee /etc/rabbitmq/enabled_plugins >/dev/null
        RABBIT_PLUGINS_CHANGED=1
    fi
}

# The apps' users, their permissions on vhost / and their topic permissions, in one definitions
# import (passwords in clear: RabbitMQ hashes them), for app X (the pattern is anchored and X is
# a plain word):
#   configure, write, read: ^(promiscuous.*|X)$
#     - exchanges whose name starts with "promiscuous" (tests use unique ones): declare
#       (configure), publish (write), bind a queue to (read);
#     - the app's own queue, named X: declare (configure), bind (write), consume (read).
#     Nothing else: not the default exchange (amq.default, so no sending straight into another
#     app's queue), not other apps' queues. Queues and exchanges share these patterns, so a
#     queue named promiscuous* would be open to every app: no app may have such a name.
#   topic permissions on exchange "promiscuous" (the default exchange of RabbitMqConfig; RabbitMQ
#   takes an exact exchange name here, not a pattern, so unique test exchanges are not covered):
#     write ^X$ -- a message must have the app's name as routing key: publishing as another app
#       is ACCESS_REFUSED (the broker closes the channel);
#     read .* -- any binding key (a subscriber binds its queue to the apps it follows).
# The routing-key check is defence in depth only: an app may declare an exchange of another
# type (no topic check) and bind "promiscuous" to it. What the broker guarantees everywhere is
# the AMQP user_id property: a message carrying one is refused unless it is the connection's
# user; subscribers should require user_id == the publishing app.
rabbit_users() {
    local app users=() permissions=() topics=()
    for app in "${APPS[@]}"; do
        users+=("{\"name\":\"$app\",\"password\":\"promiscuous_$app\",\"tags\":\"\"}")
        permissions+=("{\"user\":\"$app\",\"vhost\":\"/\",\"configure\":\"^(promiscuous.*|$app([.].*)?)\$\",\"write\":\"^(promiscuous.*|$app([.].*)?)\$\",\"read\":\"^(promiscuous.*|$app([.].*)?)\$\"}")
        topics+=("{\"user\":\"$app\",\"vhost\":\"/\",\"exchange\":\"promiscuous\",\"write\":\"^$app\$\",\"read\":\".*\"}")
    done
    local IFS=,
    printf '{"users":[%s],"permissions":[%s],"topic_permissions":[%s]}\n' \
        "${users[*]}" "${permissions[*]}" "${topics[*]}" | rabbitmqctl_ -q import_definitions
    # The import finishes asynchronously; topic permissions are imported last.
    wait_for 30 "the apps' rabbitmq users" rabbit_users_ready
}

rabbit_users_ready() {
    local listed app
    listed=$(rabbitmqctl_ -q list_topic_permissions -p / --no-table-headers)
    for app in "${APPS[@]}"; do
        printf '%s\n' "$listed" | grep -qxF "$app"$'\tpromiscuous\t^'"$app"$'$\t.*' || return 1
    done
}

rabbit_up() {
    rabbit_configure
    if rabbit_ready 2>/dev/null; then
        if rabbit_tls_ready >/dev/null 2>&1; then
            if [ -n "${RABBIT_PLUGINS_CHANGED:-}" ]; then
                as_root rabbitmq-plugins -n "$NODE" -q enable rabbitmq_consistent_hash_exchange >/dev/null
            fi
            rabbit_users
            return 0
        fi
        # The TLS listener is configured at boot only: a node started before it was configured
        # (or with an old certificate) is restarted.
        log "restarting rabbitmq: no TLS listener on 127.0.0.1:$AMQPS_PORT with the current certificate"
        rabbitmqctl_ -q shutdown >/dev/null
    fi
    log "starting rabbitmq on 127.0.0.1:$AMQP_PORT and (TLS) 127.0.0.1:$AMQPS_PORT"
    as_root rabbitmq-server -detached
    wait_for 120 "rabbitmq" rabbit_ready
    wait_for 30 "rabbitmq TLS listener" rabbit_tls_ready
    rabbit_users
    log "rabbitmq ready on 127.0.0.1:$AMQP_PORT and (TLS) 127.0.0.1:$AMQPS_PORT"
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

# MariaDB: our own server (Debian's package also sets up a system instance with its init script,
# which is not used: no init system here), run by user mysql from $MARIADB_DIR, listening on
# 127.0.0.1 only, its socket in $MARIADB_DIR, UTF-8 (utf8mb4) by default as in Debian's own
# configuration. Defaults otherwise (InnoDB, REPEATABLE READ, no binary log); user
# promiscuous@127.0.0.1 may create the tests' databases.
MARIADB_DIR=$RUN_DIR/mariadb
mariadb_socket() { echo "$MARIADB_DIR/mariadb.sock"; }
mariadb_ready() { mariadb-admin --no-defaults --socket="$(mariadb_socket)" -u root status >/dev/null 2>&1; }
mariadb_settings_ok() {
    [ "$(mariadb --no-defaults --socket="$(mariadb_socket)" -u root -N -e 'SELECT @@character_set_server')" = utf8mb4 ]
}
mariadb_up() {
    if mariadb_ready && ! mariadb_settings_ok; then
        log "restarting mariadb: started with other settings"
        mariadb_down
        wait_for 60 "mariadb to stop" eval '! mariadb_ready'
    fi
    if ! mariadb_ready; then
        as_root mkdir -p "$MARIADB_DIR"
        as_root chown mysql:mysql "$MARIADB_DIR"
        if [ ! -d "$MARIADB_DIR/data/mysql" ]; then
            log "initialising mariadb in $MARIADB_DIR/data"
            as_root mariadb-install-db --no-defaults --user=mysql --datadir="$MARIADB_DIR/data" \
                --auth-root-authentication-method=socket --skip-test-db >"$MARIADB_DIR/install.log" 2>&1 ||
                { cat "$MARIADB_DIR/install.log" >&2; return 1; }
        fi
        log "starting mariadb on 127.0.0.1:$MARIADB_PORT"
        as_root setsid mariadbd --no-defaults --user=mysql --datadir="$MARIADB_DIR/data" \
            --socket="$(mariadb_socket)" --pid-file="$MARIADB_DIR/mariadb.pid" \
            --bind-address=127.0.0.1 --port="$MARIADB_PORT" --skip-name-resolve \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
            --log-error="$MARIADB_DIR/error.log" </dev/null >/dev/null 2>&1 &
        wait_for 60 "mariadb" mariadb_ready
    fi
    as_root mariadb --no-defaults --socket="$(mariadb_socket)" -u root -e \
        "CREATE USER IF NOT EXISTS promiscuous@'127.0.0.1' IDENTIFIED BY 'promiscuous'; \
         GRANT ALL PRIVILEGES ON *.* TO promiscuous@'127.0.0.1'"
    log "mariadb ready on 127.0.0.1:$MARIADB_PORT"
}
mariadb_down() {
    mariadb_ready || return 0
    as_root mariadb-admin --no-defaults --socket="$(mariadb_socket)" -u root shutdown >/dev/null 2>&1 || true
}

urls() {
    echo "export PROMISCUOUS_AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
    echo "export PROMISCUOUS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/"
    echo "export PROMISCUOUS_POSTGRES_URL=postgres://promiscuous:promiscuous@127.0.0.1:5432/postgres"
    echo "export PROMISCUOUS_MARIADB_URL=mysql://promiscuous:promiscuous@127.0.0.1:$MARIADB_PORT/mysql"
    # TLS: the certificates name 127.0.0.1 and localhost; guest may log in over loopback only.
    echo "export PROMISCUOUS_AMQPS_URL=amqps://guest:guest@127.0.0.1:$AMQPS_PORT/%2f"
    echo "export PROMISCUOUS_REDISS_URL=rediss://127.0.0.1:$REDISS_PORT/"
    echo "export PROMISCUOUS_TLS_CA=$TLS_DIR/ca.pem"
    echo "export PROMISCUOUS_TLS_WRONG_CA=$TLS_DIR/wrong-ca.pem"
}

# --- A three-node RabbitMQ cluster, beside the single node -----------------------------------
# Nodes rabbit-1@127.1.0.1 .. rabbit-3@127.1.0.3 (long names: each node's Erlang distribution
# has a loopback address of its own, so a test can cut one node off the others with tc on lo,
# tests/netfaults.rs), AMQP on 127.0.0.1:$CLUSTER_PORT+N (5701..5703), distribution on
# 127.1.0.N:$CLUSTER_PORT+N+20000, the cluster's own epmd on port $CLUSTER_EPMD_PORT (listening on
# those addresses), each node with its data, logs, config and pid file under
# $RUN_DIR/cluster/rabbit-N (owned by user rabbitmq, who runs them: the Erlang cookie is the
# single node's, /var/lib/rabbitmq/.erlang.cookie). Nodes 2 and 3 join node 1 the first time;
# afterwards each rejoins by itself when started. A node cut off from the others pauses
# (pause_minority); net_ticktime 10 s, so that takes 8-13 s rather than a minute. Plugin:
# rabbitmq_consistent_hash_exchange (partitioned queues). Users: guest (loopback only), which
# the cluster tests use.
CLUSTER_PORT=${PROMISCUOUS_CLUSTER_PORT:-5700}
CLUSTER_EPMD_PORT=${PROMISCUOUS_CLUSTER_EPMD_PORT:-4370}
CLUSTER_DIR=$RUN_DIR/cluster
CLUSTER_NODES=(1 2 3)

cluster_address() { echo "127.1.0.$1"; }
cluster_node() { echo "rabbit-$1@$(cluster_address "$1")"; }
cluster_port() { echo $((CLUSTER_PORT + $1)); }
cluster_ctl() { # node, rabbitmqctl arguments...
    local n=$1
    shift
    as_root env RABBITMQ_CONF_ENV_FILE="$CLUSTER_DIR/rabbit-$n/rabbitmq-env.conf" \
        rabbitmqctl -n "$(cluster_node "$n")" "$@"
}
cluster_ready() { cluster_ctl "$1" -q await_startup --timeout 5; }

cluster_configure() { # node
    local n=$1 dir=$CLUSTER_DIR/rabbit-$1 ip
    ip="{$(cluster_address "$1" | tr . ,)}"
    as_root mkdir -p "$dir/mnesia" "$dir/log"
    as_root tee "$dir/rabbitmq-env.conf" >/dev/null <<CONF
NODENAME=$(cluster_node "$n")
USE_LONGNAME=true
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$(cluster_port "$n")
DIST_PORT=$(($(cluster_port "$n") + 20000))
CONFIG_FILE=$dir/rabbitmq
MNESIA_BASE=$dir/mnesia
LOG_BASE=$dir/log
PID_FILE=$dir/rabbit.pid
ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export ERL_EPMD_PORT=$CLUSTER_EPMD_PORT
export ERL_EPMD_ADDRESS=127.0.0.1,$(cluster_address 1),$(cluster_address 2),$(cluster_address 3)
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface $ip -kernel inet_dist_connect_options [{ip,$ip}] -kernel net_ticktime 10"
CONF
    echo "$(cluster_node "$n")" | as_root tee "$dir/nodename" >/dev/null
    # No TLS listener and no management plugin: what the cluster tests need, light to start.
    as_root tee "$dir/rabbitmq.conf" >/dev/null <<CONF
listeners.tcp.default = 127.0.0.1:$(cluster_port "$n")
# A node cut off from the others pauses rather than going on alone (split brain).
cluster_partition_handling = pause_minority
CONF
    echo '[rabbitmq_consistent_hash_exchange].' | as_root tee "$dir/enabled_plugins" >/dev/null
    as_root chown -R rabbitmq:rabbitmq "$dir"
}

cluster_start() { # node: starts it (detached) unless it runs
    local n=$1
    if cluster_ready "$n" 2>/dev/null; then return 0; fi
    cluster_stop_stale "$n"
    cluster_configure "$n"
    as_root env RABBITMQ_CONF_ENV_FILE="$CLUSTER_DIR/rabbit-$n/rabbitmq-env.conf" \
        rabbitmq-server -detached
}

cluster_stop_stale() { # node: a node of an older configuration (another name) still running
    local n=$1 dir=$CLUSTER_DIR/rabbit-$1 pid
    pid=$(as_root cat "$dir/rabbit.pid" 2>/dev/null) || return 0
    as_root kill -0 "$pid" 2>/dev/null || return 0
    [ "$(as_root cat "$dir/nodename" 2>/dev/null)" = "$(cluster_node "$n")" ] && return 0
    log "stopping cluster node $n of an older configuration (pid $pid)"
    as_root kill "$pid" 2>/dev/null || true
    wait_for 60 "the old cluster node $n to stop" sh -c "! kill -0 $pid 2>/dev/null"
}

cluster_members() { # node: the running nodes it sees
    cluster_ctl "$1" -q cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin).get("running_nodes", [])))'
}

cluster_joined() { # node
    case " $(cluster_members 1) " in *" $(cluster_node "$1") "*) return 0 ;; esac
    return 1
}

cluster_up() {
    # The single node's cookie is shared: start it first if it never ran.
    [ -s /var/lib/rabbitmq/.erlang.cookie ] || rabbit_up
    local n
    for n in "${CLUSTER_NODES[@]}"; do cluster_start "$n"; done
    for n in "${CLUSTER_NODES[@]}"; do
        wait_for 180 "rabbitmq cluster node $n" cluster_ready "$n"
    done
    for n in "${CLUSTER_NODES[@]}"; do
        [ "$n" = 1 ] && continue
        if ! cluster_joined "$n"; then
            log "joining $(cluster_node "$n") to $(cluster_node 1)"
            quietly cluster_ctl "$n" -q stop_app
            quietly cluster_ctl "$n" -q join_cluster "$(cluster_node 1)"
            quietly cluster_ctl "$n" -q start_app
            wait_for 60 "rabbitmq cluster node $n" cluster_ready "$n"
        fi
        wait_for 60 "$(cluster_node "$n") in the cluster" cluster_joined "$n"
    done
    log "rabbitmq cluster ready: $(cluster_members 1) (127.0.0.1:$(cluster_port 1)..$(cluster_port 3))"
}

cluster_kill() { # node: kill -9, as a crash
    local pid
    pid=$(as_root cat "$CLUSTER_DIR/rabbit-$1/rabbit.pid" 2>/dev/null) || {
        log "cluster node $1 has no pid file"
        return 1
    }
    as_root kill -9 "$pid" 2>/dev/null || true
    # Its port closes when the process is gone.
    wait_for 30 "cluster node $1 to stop" sh -c "! kill -0 $pid 2>/dev/null"
    log "killed $(cluster_node "$1") (pid $pid)"
}

cluster_leader() { # queue: the number of the node that leads it (asked of any running node)
    local n line
    for n in "${CLUSTER_NODES[@]}"; do
        line=$(cluster_ctl "$n" -q list_queues name leader --no-table-headers 2>/dev/null |
            awk -F'\t' -v q="$1" '$1 == q { print $2 }') || continue
        case "$line" in
        rabbit-*@*)
            line=${line#rabbit-}
            echo "${line%%@*}"
            return 0
            ;;
        esac
    done
    log "no running node knows a leader for queue $1"
    return 1
}

cluster_urls() {
    local n urls=()
    for n in "${CLUSTER_NODES[@]}"; do
        urls+=("amqp://guest:guest@127.0.0.1:$(cluster_port "$n")/%2f")
    done
    local IFS=,
    echo "export PROMISCUOUS_CLUSTER_AMQP_URLS=${urls[*]}"
    echo "export PROMISCUOUS_CLUSTER_DIST_ADDRESSES=$(cluster_address 1),$(cluster_address 2),$(cluster_address 3)"
}

cluster_cmd() {
    case "${1:-}" in
    up)
        install_missing
        # The network-fault tests (tests/netfaults.rs) drop a node's packets with nft.
        command -v nft >/dev/null 2>&1 || apt_install nftables
        cluster_up
        ;;
    down)
        local n
        for n in "${CLUSTER_NODES[@]}"; do cluster_ctl "$n" -q stop >/dev/null 2>&1 || true; done
        log "cluster stopped"
        ;;
    status)
        local n
        for n in "${CLUSTER_NODES[@]}"; do
            if cluster_ready "$n" 2>/dev/null; then
                echo "$(cluster_node "$n"): up (127.0.0.1:$(cluster_port "$n")), sees: $(cluster_members "$n")"
            else
                echo "$(cluster_node "$n"): down"
            fi
        done
        ;;
    kill) cluster_kill "${2:?node number}" ;;
    leader) cluster_leader "${2:?queue name}" ;;
    start)
        cluster_start "${2:?node number}"
        wait_for 180 "rabbitmq cluster node $2" cluster_ready "$2"
        wait_for 60 "$(cluster_node "$2") in the cluster" cluster_joined "$2"
        ;;
    *)
        echo "usage: $0 cluster up|down|status|kill N|start N|leader QUEUE" >&2
        exit 2
        ;;
    esac
}

# --- Redis Sentinel: a primary, a replica and three sentinels, beside the single Redis -------
# Redis nodes 1 and 2 on 127.0.0.1:$SENTINEL_REDIS_PORT+N (6391, 6392), node 2 a replica of
# node 1 when first started; sentinels 1..3 on 127.0.0.1:$SENTINEL_PORT+N (26391..26393), from
# Debian's redis-sentinel, monitoring them as master "promiscuous" (quorum 2, a primary is down
# after 1 s without answer). Data, logs, configs (rewritten by the sentinels) and pid files under
# $RUN_DIR/sentinel. No persistence: what a killed primary held and its replica had not received
# is lost, as in a real failover.
SENTINEL_REDIS_PORT=${PROMISCUOUS_SENTINEL_REDIS_PORT:-6390}
SENTINEL_PORT=${PROMISCUOUS_SENTINEL_PORT:-26390}
SENTINEL_DIR=$RUN_DIR/sentinel
SENTINEL_MASTER=promiscuous
SENTINEL_NODES=(1 2)
SENTINELS=(1 2 3)

sentinel_redis_port() { echo $((SENTINEL_REDIS_PORT + $1)); }
sentinel_port() { echo $((SENTINEL_PORT + $1)); }
sentinel_redis_ready() { redis-cli -h 127.0.0.1 -p "$(sentinel_redis_port "$1")" ping | grep -q PONG; }
sentinel_ready() { redis-cli -h 127.0.0.1 -p "$(sentinel_port "$1")" ping | grep -q PONG; }

sentinel_primary_addr() { # host port of the primary, as the first answering sentinel says
    local s out
    for s in "${SENTINELS[@]}"; do
        out=$(redis-cli -h 127.0.0.1 -p "$(sentinel_port "$s")" --raw \
            sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null) || continue
        [ -n "$out" ] || continue
        echo $out
        return 0
    done
    return 1
}

sentinel_primary() { # the number of the node the sentinels call primary
    local addr port
    addr=$(sentinel_primary_addr) || { log "no sentinel answers"; return 1; }
    port=${addr##* }
    echo $((port - SENTINEL_REDIS_PORT))
}

sentinel_node_start() { # node [host port of the primary to replicate]
    local n=$1 dir=$SENTINEL_DIR/redis-$1
    if sentinel_redis_ready "$n" 2>/dev/null; then return 0; fi
    mkdir -p "$dir"
    local replica=()
    [ $# -ge 3 ] && replica=(--replicaof "$2" "$3")
    redis-server --bind 127.0.0.1 --port "$(sentinel_redis_port "$n")" --daemonize yes \
        --save "" --appendonly no --dir "$dir" --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" "${replica[@]}"
    wait_for 30 "sentinel redis node $n" sentinel_redis_ready "$n"
}

sentinel_start() { # sentinel number
    local n=$1 dir=$SENTINEL_DIR/sentinel-$1
    if sentinel_ready "$n" 2>/dev/null; then return 0; fi
    mkdir -p "$dir"
    cat >"$dir/sentinel.conf" <<CONF
bind 127.0.0.1
port $(sentinel_port "$n")
daemonize yes
dir $dir
pidfile $dir/sentinel.pid
logfile $dir/sentinel.log
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $(sentinel_redis_port 1) 2
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 10000
sentinel parallel-syncs $SENTINEL_MASTER 1
CONF
    redis-sentinel "$dir/sentinel.conf"
    wait_for 30 "sentinel $n" sentinel_ready "$n"
}

sentinel_up() {
    command -v redis-sentinel >/dev/null 2>&1 || {
        apt_install redis-sentinel
        # Its package starts a sentinel of its own on 26379 where an init system runs: not ours.
        redis-cli -p 26379 shutdown nosave >/dev/null 2>&1 || true
    }
    local n
    if sentinel_ready 1 2>/dev/null && sentinel_primary_addr >/dev/null; then
        # Running: start what is down, as a replica of the sentinels' primary.
        local addr
        addr=$(sentinel_primary_addr)
        for n in "${SENTINEL_NODES[@]}"; do
            # shellcheck disable=SC2086
            sentinel_redis_ready "$n" 2>/dev/null || sentinel_node_start "$n" $addr
        done
        for n in "${SENTINELS[@]}"; do sentinel_start "$n"; done
    else
        sentinel_down
        rm -rf "$SENTINEL_DIR"
        sentinel_node_start 1
        sentinel_node_start 2 127.0.0.1 "$(sentinel_redis_port 1)"
        for n in "${SENTINELS[@]}"; do sentinel_start "$n"; done
    fi
    wait_for 60 "the replica in sync and seen by the sentinels" sentinel_sees_replica
    log "redis sentinel ready: primary node $(sentinel_primary) of $SENTINEL_MASTER, sentinels on 127.0.0.1:$(sentinel_port 1)..$(sentinel_port 3)"
}

sentinel_sees_replica() { # every sentinel knows a replica and the other sentinels, and the
    # replicas are in sync (a sentinel refuses to promote one that is not: no good slave)
    local s n primary
    primary=$(sentinel_primary) || return 1
    for n in "${SENTINEL_NODES[@]}"; do
        [ "$n" = "$primary" ] && continue
        redis-cli -h 127.0.0.1 -p "$(sentinel_redis_port "$n")" info replication |
            grep -q '^master_link_status:up' || return 1
    done
    for s in "${SENTINELS[@]}"; do
        redis-cli -h 127.0.0.1 -p "$(sentinel_port "$s")" --raw sentinel master "$SENTINEL_MASTER" |
            awk 'prev == "num-slaves" && $1 < 1 { bad = 1 } prev == "num-other-sentinels" && $1 < 2 { bad = 1 } { prev = $1 } END { exit bad }' ||
            return 1
    done
}

sentinel_down() {
    local n
    for n in "${SENTINELS[@]}"; do
        redis-cli -h 127.0.0.1 -p "$(sentinel_port "$n")" shutdown nosave >/dev/null 2>&1 || true
    done
    for n in "${SENTINEL_NODES[@]}"; do
        redis-cli -h 127.0.0.1 -p "$(sentinel_redis_port "$n")" shutdown nosave >/dev/null 2>&1 || true
    done
}

sentinel_kill() { # node: kill -9, as a crash
    local pid
    pid=$(cat "$SENTINEL_DIR/redis-$1/redis.pid" 2>/dev/null) || {
        log "sentinel redis node $1 has no pid file"
        return 1
    }
    kill -9 "$pid" 2>/dev/null || true
    wait_for 30 "sentinel redis node $1 to stop" sh -c "! kill -0 $pid 2>/dev/null"
    log "killed sentinel redis node $1 (pid $pid)"
}

sentinel_url() {
    local s hosts=()
    for s in "${SENTINELS[@]}"; do hosts+=("127.0.0.1:$(sentinel_port "$s")"); done
    local IFS=,
    echo "export PROMISCUOUS_SENTINEL_REDIS_URL=redis+sentinel://${hosts[*]}/$SENTINEL_MASTER"
}

sentinel_cmd() {
    case "${1:-}" in
    up) sentinel_up ;;
    down) sentinel_down && log "sentinel stopped" ;;
    status)
        local n
        for n in "${SENTINEL_NODES[@]}"; do
            if sentinel_redis_ready "$n" 2>/dev/null; then
                echo "redis node $n: up (127.0.0.1:$(sentinel_redis_port "$n")), $(redis-cli -p "$(sentinel_redis_port "$n")" --raw role | head -1)"
            else
                echo "redis node $n: down"
            fi
        done
        for n in "${SENTINELS[@]}"; do
            if sentinel_ready "$n" 2>/dev/null; then echo "sentinel $n: up (127.0.0.1:$(sentinel_port "$n"))"; else echo "sentinel $n: down"; fi
        done
        ;;
    primary) sentinel_primary ;;
    kill) sentinel_kill "${2:?node number}" ;;
    start)
        local addr
        addr=$(sentinel_primary_addr) || { log "no sentinel answers"; return 1; }
        # shellcheck disable=SC2086
        sentinel_node_start "${2:?node number}" $addr
        ;;
    *)
        echo "usage: $0 sentinel up|down|status|primary|kill N|start N" >&2
        exit 2
        ;;
    esac
}

case "${1:-}" in
up)
    install_missing
    tls_certs
    redis_up
    rabbit_up
    postgres_up
    mariadb_up
    ;;
down)
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rabbitmqctl_ stop >/dev/null 2>&1 || true
    [ -n "$(pg_version)" ] && as_root pg_ctlcluster "$(pg_version)" main stop >/dev/null 2>&1 || true
    mariadb_down
    log "stopped"
    ;;
status)
    if redis_ready 2>/dev/null; then echo "redis: up (127.0.0.1:$REDIS_PORT)"; else echo "redis: down"; fi
    if redis_tls_ready 2>/dev/null; then echo "redis TLS: up (127.0.0.1:$REDISS_PORT)"; else echo "redis TLS: down"; fi
    if rabbit_ready 2>/dev/null; then echo "rabbitmq: up (127.0.0.1:$AMQP_PORT)"; else echo "rabbitmq: down"; fi
    if rabbit_tls_ready >/dev/null 2>&1; then echo "rabbitmq TLS: up (127.0.0.1:$AMQPS_PORT)"; else echo "rabbitmq TLS: down"; fi
    if pg_ready 2>/dev/null; then echo "postgresql: up (127.0.0.1:5432)"; else echo "postgresql: down"; fi
    if mariadb_ready; then echo "mariadb: up (127.0.0.1:$MARIADB_PORT)"; else echo "mariadb: down"; fi
    ;;
restart-rabbitmq)
    rabbitmqctl_ -q stop_app
    rabbitmqctl_ -q start_app
    wait_for 60 "rabbitmq" rabbit_ready
    ;;
env)
    urls
    # Printed whether the cluster runs or not (`cluster up` starts it): its tests say so.
    cluster_urls
    sentinel_url
    ;;
cluster)
    shift
    cluster_cmd "$@"
    ;;
sentinel)
    shift
    sentinel_cmd "$@"
    ;;
*)
    echo "usage: $0 up|down|status|restart-rabbitmq|env|cluster ...|sentinel ..." >&2
    exit 2
    ;;
esac
