#!/usr/bin/env bash
# A check of the example by hand, without `lab check --target`: for each case
# it starts the shop (sidekiq + puma) against `lab fakes` and a private
# redis-server on free ports, sets one fault, places 2 orders, waits until
# every job has run (moving Sidekiq's retries at once, as its "Retry now"
# button does), prints what each order got from the providers' ledgers, and
# says whether that is what the case expects.
#
#   examples/sidekiq-shop/smoke.sh            # every case
#   examples/sidekiq-shop/smoke.sh naive-crash
#   LAB=/path/to/lab examples/sidekiq-shop/smoke.sh
#
# Needs: lab (or LAB=…), redis-server, redis-cli, ruby, sidekiq, puma, curl.
# Exits 0 when every case ended as expected, 1 when one did not, 2 when
# something could not start. Everything it starts it stops by pid, and every
# wait has a deadline.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=${LAB:-lab}
WAIT_S=${WAIT_S:-60}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sidekiq-shop-smoke.XXXXXX")
PIDS=()      # the fakes and redis, for the whole run
CASE_PIDS=() # one case's sidekiq and puma

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

for tool in "$LAB" redis-server redis-cli ruby sidekiq puma curl; do
  command -v "$tool" >/dev/null || die "$tool not found (see examples/sidekiq-shop/README.md)"
done

# Stops one process we started: TERM, up to 10 s to exit, then KILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "pid $pid did not stop on TERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${CASE_PIDS[@]}" "${PIDS[@]}"; do stop_pid "$pid"; done
  CASE_PIDS=() PIDS=()
}
trap 'cleanup; log "logs are in $WORK"' EXIT

free_port() { ruby -rsocket -e 's = TCPServer.new("127.0.0.1", 0); puts s.addr[1]; s.close'; }

# wait_for DESCRIPTION SECONDS COMMAND…: runs COMMAND every 0.1 s until it
# succeeds, or fails after SECONDS.
wait_for() {
  local what=$1 seconds=$2 deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.1
  done
  log "$what"
}

# The Ruby half: Sidekiq's sets through its own API, the ledgers over HTTP.
cat >"$WORK/helper.rb" <<'RUBY'
require "json"
require "net/http"
require "sidekiq"
require "sidekiq/api"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }

def ledger(service)
  JSON.parse(Net::HTTP.get(URI("#{ENV.fetch("FAKE_API_URL")}/#{service}/ledger")))
end

case ARGV.fetch(0)
when "registered"
  exit(Sidekiq::ProcessSet.new.size.positive? ? 0 : 1)
when "settled"
  # Move every retry to its queue now; settled = every order finished and
  # nothing waiting, retrying or running.
  Sidekiq::RetrySet.new.retry_all
  queued = Sidekiq::Queue.all.sum(&:size)
  busy = Sidekiq::Workers.new.size
  retries = Sidekiq::RetrySet.new.size
  orders = ARGV.fetch(1).split(",")
  statuses = Sidekiq.redis { |r| orders.map { |id| r.hget("shop:order:#{id}", "status") } }
  done = statuses.all? { |s| %w[complete declined].include?(s) }
  exit(done && queued.zero? && busy.zero? && retries.zero? ? 0 : 1)
when "counts"
  # Per order: successful charges, confirmation emails, fulfillment requests.
  orders = ARGV.fetch(1).split(",")
  charges = ledger("payments").select { |r| r.dig("response", "status") == "success" }
  emails = ledger("email").select { |r| r.dig("request", "template_id") == "order-confirmation" }
  shipments = ledger("fulfillment")
  counts = orders.map do |id|
    [id, charges.count { |r| r.dig("request", "metadata", "order_id").to_s == id },
      emails.count { |r| r.dig("request", "template_data", "order_id").to_s == id },
      shipments.count { |r| r.dig("request", "metadata", "order_id").to_s == id }]
  end
  counts.each { |id, c, e, f| puts "  order #{id}: charges=#{c} emails=#{e} fulfillments=#{f}" }
  puts "  dead jobs=#{Sidekiq::DeadSet.new.size} notified=#{ledger("error-catcher").size}"
  # What the case expects, as the sorted per-order triples, e.g. "111,111".
  got = counts.map { |_, c, e, f| "#{c}#{e}#{f}" }.sort.join(",")
  want = ARGV.fetch(2)
  puts "  per-order (charges,emails,fulfillments) sorted: #{got}, expected #{want}"
  exit(got == want ? 0 : 1)
end
RUBY

# The shared pieces, started once: the fake services and a private redis.
FAKES_LOG=$WORK/fakes.log
"$LAB" fakes --bind 127.0.0.1:0 >"$FAKES_LOG" 2>&1 &
PIDS+=($!)
wait_for "fake services up" 30 grep -q "listening on http" "$FAKES_LOG" || die "lab fakes did not start: $(cat "$FAKES_LOG")"
FAKE_API_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$FAKES_LOG" | head -1)
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for "redis up on $REDIS_PORT" 30 redis-cli -p "$REDIS_PORT" ping || die "redis-server did not start: $(cat "$WORK/redis.log")"
export FAKE_API_URL REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# run_case NAME VARIANT FAULT_JSON EXPECTED: one fresh shop, one fault.
run_case() {
  local name=$1 variant=$2 fault=$3 expected=$4 port ids="" i location verdict=0
  log "== $name: SHOP_VARIANT=$variant, email rules $fault"
  curl -fsS -X POST "$FAKE_API_URL/reset" >/dev/null
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  port=$(free_port)
  SHOP_VARIANT=$variant sidekiq -r "$HERE/app.rb" -c 5 >"$WORK/$name.worker.log" 2>&1 &
  CASE_PIDS+=($!)
  SHOP_VARIANT=$variant puma -b "tcp://127.0.0.1:$port" "$HERE/config.ru" >"$WORK/$name.web.log" 2>&1 &
  CASE_PIDS+=($!)
  wait_for "web up on $port" 30 curl -fsS "http://127.0.0.1:$port/" || die "puma did not answer: $WORK/$name.web.log"
  wait_for "sidekiq registered" 30 ruby "$WORK/helper.rb" registered || die "sidekiq did not start: $WORK/$name.worker.log"

  curl -fsS -X PUT "$FAKE_API_URL/email/behavior" -H 'Content-Type: application/json' -d "$fault" >/dev/null
  for i in 1 2; do
    location=$(curl -sS -o /dev/null -w '%{redirect_url}' -X POST "http://127.0.0.1:$port/orders" \
      --data-urlencode 'order[quantity]=1' --data-urlencode "order[email]=buyer$i@example.com")
    [[ -n $location ]] || die "POST /orders did not redirect"
    ids+=${ids:+,}${location##*/}
  done
  log "placed orders $ids"
  if ! wait_for "every job ran" "$WAIT_S" ruby "$WORK/helper.rb" settled "$ids"; then
    log "not settled after ${WAIT_S}s"
    verdict=1
  fi
  ruby "$WORK/helper.rb" counts "$ids" "$expected" || verdict=1
  for i in "${CASE_PIDS[@]}"; do stop_pid "$i"; done
  CASE_PIDS=()
  if ((verdict == 0)); then log "== $name: as expected"; else log "== $name: NOT as expected"; fi
  return $verdict
}

NO_FAULT='{"faults":[]}'
SEND_THEN_CRASH='{"faults":[{"mode":"send-then-crash","calls":1,"operations":["send"]}]}'
declare -A CASES=(
  # no fault: each order charged, emailed, fulfilled once
  [naive-clean]="naive|$NO_FAULT|111,111"
  # the email is sent, the client hears 503; the whole job is retried:
  # one order is charged twice and emailed twice
  [naive-crash]="naive|$SEND_THEN_CRASH|111,221"
  # the same fault: the retry replays the keyed email, nothing doubles
  [safe-crash]="safe|$SEND_THEN_CRASH|111,111"
)
ORDER=(naive-clean naive-crash safe-crash)
(($# == 0)) || ORDER=("$@")

failed=0
for name in "${ORDER[@]}"; do
  [[ -n ${CASES[$name]:-} ]] || die "no case $name (cases: ${!CASES[*]})"
  IFS='|' read -r variant fault expected <<<"${CASES[$name]}"
  run_case "$name" "$variant" "$fault" "$expected" || failed=1
done
exit $failed
