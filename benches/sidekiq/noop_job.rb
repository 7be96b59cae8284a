# The no-op job of benches/runner.rs, for Ruby Sidekiq 6.4 (Debian's
# ruby-sidekiq): `sidekiq -c 10 -r benches/sidekiq/noop_job.rb -q default`.
require "sidekiq"

# No line per job: the lab's side of the bench runs without a log
# subscriber, so neither side pays for logging. IDEMLAB_BENCH_SIDEKIQ_LOGS=1
# keeps Sidekiq's default (a start and a done line per job) for comparison.
if ENV.fetch("IDEMLAB_BENCH_SIDEKIQ_LOGS", "").empty?
  Sidekiq.configure_server do |config|
    config.logger.level = Logger::WARN
  end
end

class NoopJob
  include Sidekiq::Worker

  def perform(*)
  end
end
