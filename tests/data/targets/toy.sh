#!/bin/sh
# A toy "app" for tests/target/: small enough to read at a glance, so a
# test failure is the lab's, not the app's. It calls the fake services with
# curl at $FAKE_API_URL, as a user's app would, in the book's bodies
# (metadata.order_id, template_data.order_id).
#
#   toy.sh place ID FORMAT    charge, email and fulfill order ID inline, then
#                             print a banner and the id (FORMAT plain), a JSON
#                             answer {"order":{"id":ID}} (json), or nothing
#   toy.sh enqueue ID         leave a job for `worker` in $TOY_QUEUE, print ID
#   toy.sh worker             take each job from $TOY_QUEUE (gone once taken,
#                             as basic fetch) and complete its order
#   toy.sh chatter            charge order "chatter" every 100 ms, for ever
#   toy.sh record NAME ARG…   write its arguments, cwd, some env, its pid, its
#                             child's and its start time to
#                             $TOY_OUT/NAME-PID.txt, then wait
#                             (the worker, given $TOY_OUT, notes each life's
#                             pid in $TOY_OUT/worker.pids)
#   toy.sh push ID            push a Sidekiq job for ID on $TOY_REDIS, print ID
#   toy.sh shuffle            move each job on $TOY_REDIS between its queue and
#                             the retry set, atomically, every millisecond
#   toy.sh retries COUNT      add COUNT failed jobs to the retry set on
#                             $TOY_REDIS, one every 5 ms, then wait
#   toy.sh stubborn           ignore SIGTERM and wait (only SIGKILL ends it)
#   toy.sh die STATUS         print two lines, exit with STATUS soon after
#   toy.sh late LAB PORT      after 1 s, serve `lab fakes` on PORT
#
# Knobs (env): TOY_CHARGES (charges per order, default 1),
# TOY_CLIENT_TIMEOUT_S (curl's --max-time, default 5), TOY_GAP_S (a pause
# between an order's effects, default 0).
set -u

# call METHOD PATH BODY: prints the HTTP status (000 when no answer).
call() {
    curl -sS -o /dev/null -w '%{http_code}' --max-time "${TOY_CLIENT_TIMEOUT_S:-5}" \
        -X "$1" -H 'Content-Type: application/json' -d "$3" "$FAKE_API_URL$2" 2>/dev/null
    return 0
}

# until_ok WHAT COMMAND…: runs it until it answers 2xx, 20 tries at most.
until_ok() {
    what=$1
    shift
    tries=0
    while :; do
        status=$("$@")
        case $status in
        2??) return 0 ;;
        esac
        tries=$((tries + 1))
        echo "toy: $what answered $status (try $tries)"
        [ "$tries" -ge 20 ] && return 1
        sleep 0.05
    done
}

charge() {
    call POST /payments/charge "{\"customer_id\":\"cus_toy\",\"payment_method_id\":\"pm_toy\",\"amount_cents\":1200,\"metadata\":{\"order_id\":\"$1\"}}"
}
email() {
    call POST /email/send "{\"to\":\"buyer@example.com\",\"template_id\":\"order-confirmation\",\"template_data\":{\"order_id\":\"$1\"}}"
}
fulfill() {
    call PUT /fulfillment/request "{\"customer_id\":\"cus_toy\",\"address\":\"1 Main Street\",\"product_id\":1,\"quantity\":1,\"metadata\":{\"order_id\":\"$1\"}}"
}

complete_order() {
    i=0
    while [ "$i" -lt "${TOY_CHARGES:-1}" ]; do
        until_ok "charge $1" charge "$1" || return 1
        echo "toy: charged $1"
        i=$((i + 1))
    done
    sleep "${TOY_GAP_S:-0}"
    until_ok "email $1" email "$1" || return 1
    sleep "${TOY_GAP_S:-0}"
    until_ok "fulfillment $1" fulfill "$1" || return 1
    echo "toy: order $1 complete"
}

now_ms() {
    date +%s%3N
}

cmd=$1
shift
case $cmd in
place)
    complete_order "$1" >&2 || exit 1
    case $2 in
    plain) printf 'toy app booted\n%s\n' "$1" ;;
    json) printf 'toy app booted\n{"order": {"id": "%s"}}\n' "$1" ;;
    esac
    ;;
enqueue)
    mkdir -p "$TOY_QUEUE"
    printf '%s\n' "$1" >"$TOY_QUEUE/.$1.tmp"
    mv "$TOY_QUEUE/.$1.tmp" "$TOY_QUEUE/$1.job"
    printf '%s\n' "$1"
    ;;
worker)
    mkdir -p "$TOY_QUEUE"
    if [ -n "${TOY_OUT:-}" ]; then
        mkdir -p "$TOY_OUT"
        echo "$$" >>"$TOY_OUT/worker.pids"
    fi
    echo "toy worker: waiting for jobs in $TOY_QUEUE"
    while :; do
        for job in "$TOY_QUEUE"/*.job; do
            [ -e "$job" ] || continue
            id=$(cat "$job")
            rm -f "$job"
            echo "toy worker: took order $id"
            complete_order "$id"
        done
        sleep 0.05
    done
    ;;
chatter)
    while :; do
        charge chatter >/dev/null
        sleep 0.1
    done
    ;;
record)
    name=$1
    shift
    mkdir -p "$TOY_OUT"
    out="$TOY_OUT/$name-$$.txt"
    sleep 600 &
    child=$!
    {
        printf 'pid=%s\nchild_pid=%s\n' "$$" "$child"
        for arg in "$@"; do
            printf '%s\n' "$arg"
        done
        printf 'cwd=%s\n' "$(pwd)"
        printf 'env_fakes=%s\n' "${FAKE_API_URL:-}"
        printf 'env_run_dir=%s\n' "${TOY_RUN_DIR:-}"
        printf 'env_whose=%s\n' "${TOY_WHOSE:-}"
        if [ -n "${TOY_WEB:-}" ]; then
            printf 'web_answers=%s\n' "$(curl -s -o /dev/null -w '%{http_code}' "$TOY_WEB")"
        fi
        if [ -n "${TOY_REDIS:-}" ]; then
            printf 'redis_ping=%s\n' "$(redis-cli -u "$TOY_REDIS" ping 2>&1)"
        fi
        printf 'started_ms=%s\n' "$(now_ms)"
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    trap 'printf "stopped_ms=%s\n" "$(now_ms)" >>"$out"; exit 0' TERM
    wait
    ;;
push)
    # A Sidekiq job for order $1 on queue:default, as Sidekiq.push writes it.
    at=$(date +%s.%N)
    job="{\"class\":\"ToyJob\",\"args\":[\"$1\"],\"jid\":\"jid$1\",\"queue\":\"default\",\"retry\":true,\"created_at\":$at,\"enqueued_at\":$at,\"retry_count\":0,\"error_class\":\"Toy::Error\",\"error_message\":\"toy\",\"failed_at\":$at}"
    redis-cli -u "$TOY_REDIS" sadd queues default >/dev/null
    redis-cli -u "$TOY_REDIS" lpush queue:default "$job" >/dev/null
    printf '%s\n' "$1"
    ;;
shuffle)
    # Moves every job between queue:default and the retry set, one atomic
    # script call every millisecond: a job always somewhere, never run.
    echo "toy: shuffling jobs between queue:default and retry"
    exec redis-cli -u "$TOY_REDIS" -r -1 -i 0.001 eval "
        local job = redis.call('RPOP', 'queue:default')
        if job then
            redis.call('ZADD', 'retry', 0, job)
            return 'to retry'
        end
        local due = redis.call('ZRANGE', 'retry', 0, 0)
        if due[1] then
            redis.call('ZREM', 'retry', due[1])
            redis.call('LPUSH', 'queue:default', due[1])
            return 'to queue'
        end
        return 'none'" 0 >/dev/null
    ;;
retries)
    # Adds $1 failed jobs to the retry set, one every 5 ms, each its own.
    echo "toy: adding $1 retries"
    redis-cli -u "$TOY_REDIS" -r "$1" -i 0.005 eval "
        local n = redis.call('INCR', 'toy:retries')
        local job = '{\"class\":\"ToyJob\",\"args\":[\"ord-1\"],\"jid\":\"retry' .. n ..
            '\",\"queue\":\"default\",\"retry\":true,\"created_at\":1700000000.0,' ..
            '\"retry_count\":0,\"error_class\":\"Toy::Error\",\"error_message\":\"toy failure ' ..
            n .. '\",\"failed_at\":1700000000.0}'
        redis.call('ZADD', 'retry', 0, job)
        return n" 0 >/dev/null
    echo "toy: added $1 retries"
    exec sleep 600
    ;;
stubborn)
    echo "toy: ignoring SIGTERM"
    trap '' TERM
    sleep 600 &
    wait
    ;;
die)
    echo "toy: booting"
    echo "toy: fatal: cannot open config/database.yml"
    sleep 0.3
    exit "$1"
    ;;
late)
    echo "toy: warming up for 1 s"
    sleep 1
    exec "$1" fakes --bind "127.0.0.1:$2"
    ;;
*)
    echo "toy.sh: unknown command $cmd" >&2
    exit 64
    ;;
esac
