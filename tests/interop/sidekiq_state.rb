# Reads the lab's Redis through Ruby Sidekiq's own API and prints what it
# sees as JSON; with PUSH_ORDER=<id> it first pushes a CompleteOrderJob the
# way a Rails app would (Sidekiq::Client.push).
require "json"
require "sidekiq"
require "sidekiq/api"

Sidekiq.configure_client do |config|
  config.redis = { url: ENV.fetch("REDIS_URL") }
end

if ENV["PUSH_ORDER"]
  jid = Sidekiq::Client.push("class" => "CompleteOrderJob", "args" => [ENV["PUSH_ORDER"].to_i], "queue" => "high")
  puts JSON.generate({ "pushed" => jid })
  exit 0
end

stats = Sidekiq::Stats.new
state = {
  "queues" => Sidekiq::Queue.all.map { |q| [q.name, q.size] }.to_h,
  "retries" => Sidekiq::RetrySet.new.map { |job|
    {
      "class" => job.klass, "args" => job.args, "jid" => job.jid,
      "error_class" => job["error_class"], "error_message" => job["error_message"],
      "retry_count" => job["retry_count"], "at" => job.at.to_f,
    }
  },
  "dead" => Sidekiq::DeadSet.new.map { |job| { "class" => job.klass, "jid" => job.jid, "error_message" => job["error_message"] } },
  "scheduled" => Sidekiq::ScheduledSet.new.size,
  "processes" => Sidekiq::ProcessSet.new.map { |p|
    { "identity" => p["identity"], "tag" => p["tag"], "version" => p["version"], "concurrency" => p["concurrency"], "busy" => p["busy"], "queues" => p["queues"] }
  },
  "processed" => stats.processed,
  "failed" => stats.failed,
}
puts JSON.generate(state)
