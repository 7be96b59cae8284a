#!/usr/bin/env bash
# A check of the example by hand, without `lab check --target`: for each case
# it starts the shop (sidekiq + puma) against `lab fakes` and a private
# redis-server on free ports, sets one fault, places 2 orders, waits until
# every job has run (moving Sidekiq's retries to their queues at once, as
# its poller would when they are due), prints what each order got from the
# providers' ledgers, and says whether that is what the case expects.
#
#   examples/sidekiq-shop/smoke.sh            # the three checks of the README
#   examples/sidekiq-shop/smoke.sh all        # every case below
#   examples/sidekiq-shop/smoke.sh safe-kill  # one case
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

# shellcheck disable=SC2317 # called by the EXIT trap
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

# Due or not, every retry back onto its queue as Sidekiq's own poller moves
# it: the payload as it is. (Sidekiq's "Retry now", RetrySet#retry_all,
# also lowers retry_count by one, so with it a job would never run out of
# retries.)
def move_retries
  Sidekiq::RetrySet.new.each { |entry| Sidekiq::Client.push(entry.item) if entry.delete }
end

def ledger(service)
  JSON.parse(Net::HTTP.get(URI("#{ENV.fetch("FAKE_API_URL")}/#{service}/ledger")))
end

case ARGV.fetch(0)
when "registered"
  # The process with this pid has written its heartbeat.
  pid = Integer(ARGV.fetch(1))
  exit(Sidekiq::ProcessSet.new.any? { |p| p["pid"] == pid } ? 0 : 1)
when "charges"
  exit(ledger("payments").size >= Integer(ARGV.fetch(1)) ? 0 : 1)
when "idle"
  # The live process (this pid) runs nothing and nothing waits anywhere.
  pid = Integer(ARGV.fetch(1))
  live = Sidekiq::ProcessSet.new.find { |p| p["pid"] == pid }
  waiting = Sidekiq::Queue.all.sum(&:size) + Sidekiq::RetrySet.new.size + Sidekiq::ScheduledSet.new.size
  exit(live && live["busy"].zero? && waiting.zero? ? 0 : 1)
when "dead"
  # Retries moved at once until this many jobs are in the dead set.
  move_retries
  exit(Sidekiq::DeadSet.new.size >= Integer(ARGV.fetch(1)) ? 0 : 1)
when "stale"
  # What Sidekiq's own API still says about the killed process.
  Sidekiq::ProcessSet.new.each do |p|
    puts "  process #{p["identity"]} pid=#{p["pid"]} busy=#{p["busy"]}"
  end
  Sidekiq::Workers.new.each do |process, _tid, work|
    puts "  in progress per Sidekiq::Workers: #{process} #{work["payload"]["class"]} args=#{work["payload"]["args"]}"
  end
when "settled"
  # Move every retry to its queue now; settled = every order finished and
  # nothing waiting, retrying or running.
  move_retries
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
  # With " dead=D notified=N" after them when the case expects deaths.
  got = counts.map { |_, c, e, f| "#{c}#{e}#{f}" }.sort.join(",")
  want = ARGV.fetch(2)
  got += " dead=#{Sidekiq::DeadSet.new.size} notified=#{ledger("error-catcher").size}" if want.include?("dead=")
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

# started_at_least N LOG: N jobs of the first class have logged their start.
# shellcheck disable=SC2317 # called through wait_for
started_at_least() {
  (($(grep -cE 'class=(CompleteOrderJob|ChargeOrderJob) .*INFO: start' "$2") >= $1))
}

# start_worker NAME VARIANT: one sidekiq process, as the target files run it.
start_worker() {
  SHOP_VARIANT=$2 sidekiq -r "$HERE/app.rb" -c 5 >>"$WORK/$1.worker.log" 2>&1 &
  WORKER=$!
  CASE_PIDS+=("$WORKER")
  wait_for "sidekiq $WORKER registered" 30 ruby "$WORK/helper.rb" registered "$WORKER" ||
    die "sidekiq did not start: $WORK/$1.worker.log"
}

# run_case NAME VARIANT SERVICE RULES EXPECTED [kill|dead]: one fresh shop,
# the service's fault rules, 2 orders. With "kill", the sidekiq process is
# SIGKILLed while both charges are in flight (the rules must make the charge
# slow) and started again, as a supervisor would. With "dead", the run ends
# when both first jobs have used up their retries.
run_case() {
  local name=$1 variant=$2 service=$3 rules=$4 expected=$5 kill=${6:-} port ids="" i location verdict=0
  log "== $name: SHOP_VARIANT=$variant, $service rules $rules${kill:+ ($kill)}"
  curl -fsS -X POST "$FAKE_API_URL/reset" >/dev/null
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  port=$(free_port)
  SHOP_VARIANT=$variant puma -b "tcp://127.0.0.1:$port" "$HERE/config.ru" >"$WORK/$name.web.log" 2>&1 &
  CASE_PIDS+=($!)
  : >"$WORK/$name.worker.log"
  start_worker "$name" "$variant"
  wait_for "web up on $port" 30 curl -fsS "http://127.0.0.1:$port/" || die "puma did not answer: $WORK/$name.web.log"

  curl -fsS -X PUT "$FAKE_API_URL/$service/behavior" -H 'Content-Type: application/json' -d "$rules" >/dev/null
  for i in 1 2; do
    location=$(curl -sS -o /dev/null -w '%{redirect_url}' -X POST "http://127.0.0.1:$port/orders" \
      --data-urlencode 'order[quantity]=1' --data-urlencode "order[email]=buyer$i@example.com")
    [[ -n $location ]] || die "POST /orders did not redirect"
    ids+=${ids:+,}${location##*/}
  done
  log "placed orders $ids"
  if [[ $kill == kill ]]; then
    # Sidekiq 6.4 writes its busy count only with its 5 s heartbeat, so the
    # job's own "start" log line is what says the charge is under way.
    wait_for "both first jobs started" 30 started_at_least 2 "$WORK/$name.worker.log" ||
      die "the first jobs never started: $WORK/$name.worker.log"
    kill -KILL "$WORKER"
    wait "$WORKER" 2>/dev/null || true
    log "killed sidekiq $WORKER with SIGKILL"
    wait_for "the provider performed both charges" 30 ruby "$WORK/helper.rb" charges 2 || verdict=1
    start_worker "$name" "$variant"
    # Nothing can bring the jobs back: settled = nothing queued, retrying
    # or running in the new process.
    wait_for "the new process is idle with nothing queued" "$WAIT_S" ruby "$WORK/helper.rb" idle "$WORKER" || verdict=1
    ruby "$WORK/helper.rb" stale
  elif [[ $kill == dead ]]; then
    wait_for "both jobs dead" $((WAIT_S * 2)) ruby "$WORK/helper.rb" dead 2 || verdict=1
  elif ! wait_for "every job ran" "$WAIT_S" ruby "$WORK/helper.rb" settled "$ids"; then
    log "not settled after ${WAIT_S}s"
    verdict=1
  fi
  ruby "$WORK/helper.rb" counts "$ids" "$expected" || verdict=1
  for i in "${CASE_PIDS[@]}"; do stop_pid "$i"; done
  CASE_PIDS=()
  if ((verdict == 0)); then log "== $name: as expected"; else log "== $name: NOT as expected"; fi
  return $verdict
}

NONE='{"faults":[]}'
SEND_THEN_CRASH='{"faults":[{"mode":"send-then-crash","calls":1}]}'
DROP_AFTER='{"faults":[{"mode":"drop-after","calls":1}]}'
CRASH_3='{"faults":[{"mode":"crash","calls":3}]}'
THROTTLE_2='{"faults":[{"mode":"throttle","calls":2,"retry_after_s":1}]}'
# 3 s, under the shop's 5 s read timeout: time to kill the process while the
# charges are under way; the provider finishes them after the client is gone.
DOWN='{"faults":[{"mode":"crash"}]}'
SLOW_CHARGES='{"faults":[{"mode":"slow","sleep_ms":3000,"calls":2}]}'
# NAME: variant | service | rules | per-order "charges emails fulfillments",
# sorted | kill. The first three are the brief's check by hand.
declare -A CASES=(
  [naive-clean]="naive|email|$NONE|111,111|"
  # the email is sent, the client hears 503; the whole job is retried:
  # one order is charged twice and emailed twice
  [naive-email-crash]="naive|email|$SEND_THEN_CRASH|111,221|"
  # the same fault: the retry replays the keyed email, nothing doubles
  [safe-email-crash]="safe|email|$SEND_THEN_CRASH|111,111|"
  [naive-email-drop]="naive|email|$DROP_AFTER|111,221|"
  [safe-email-drop]="safe|email|$DROP_AFTER|111,111|"
  [safe-payments-crash]="safe|payments|$CRASH_3|111,111|"
  [safe-payments-throttle]="safe|payments|$THROTTLE_2|111,111|"
  [safe-payments-send-then-crash]="safe|payments|$SEND_THEN_CRASH|111,111|"
  [safe-fulfillment-drop]="safe|fulfillment|$DROP_AFTER|111,111|"
  # killed mid-charge: basic fetch lost both jobs; charged, never completed
  [naive-kill]="naive|payments|$SLOW_CHARGES|100,100|kill"
  [safe-kill]="safe|payments|$SLOW_CHARGES|100,100|kill"
  # payments stays down: 26 attempts each, then the dead set and one
  # notification per death (none for the 50 transient failures before)
  [safe-payments-down]="safe|payments|$DOWN|000,000 dead=2 notified=2|dead"
)
ORDER=(naive-clean naive-email-crash safe-email-crash)
case "${1:-}" in
  "") ;;
  all) ORDER=(naive-clean naive-email-crash safe-email-crash naive-email-drop safe-email-drop
    safe-payments-crash safe-payments-throttle safe-payments-send-then-crash safe-fulfillment-drop
    naive-kill safe-kill safe-payments-down) ;;
  *) ORDER=("$@") ;;
esac

failed=0
for name in "${ORDER[@]}"; do
  [[ -n ${CASES[$name]:-} ]] || die "no case $name (cases: all ${!CASES[*]})"
  IFS='|' read -r variant service rules expected kill <<<"${CASES[$name]}"
  run_case "$name" "$variant" "$service" "$rules" "$expected" "$kill" || failed=1
done
exit $failed
