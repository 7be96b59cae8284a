# frozen_string_literal: true

# A small shop in the style of the book "Ruby on Rails Background Jobs with
# Sidekiq": a Sinatra page places an order, Sidekiq jobs charge the card,
# send the confirmation email and ask the warehouse to ship it, all against
# the fake services that idemlab serves (`lab fakes`).
#
# It comes in two variants, chosen by SHOP_VARIANT, so that `lab check
# --target` has something to find:
#
# - naive: one CompleteOrderJob does all three calls with no idempotency key.
#   Any failure after the charge retries the whole job, and the retry charges
#   (and emails) again.
# - safe: ChargeOrderJob -> SendConfirmationJob -> RequestFulfillmentJob, each
#   sending an Idempotency-Key named for the effect that must not happen twice,
#   and recording its result on the order before the next job is enqueued, so
#   a retried step replays the provider's first answer and a finished step is
#   skipped.
#
# Orders live in Redis (a hash per order, an INCR for ids): no SQL database,
# so the example needs nothing but redis-server, Ruby and Debian's packages.
#
# Environment:
#   FAKE_API_URL  the fake services' base URL, e.g. http://127.0.0.1:3001
#   REDIS_URL     redis://… for Sidekiq and the orders
#   SHOP_VARIANT  naive | safe

require "json"
require "logger"
require "time"
require "net/http"
require "uri"
require "sidekiq"
require "sidekiq/api"
require "sinatra/base"

# Debian's Sidekiq 6.4 calls redis-rb 4.8 the old way; its deprecation
# warning on every BRPOP would drown the shop's own log lines.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# The settings, read once at boot. A missing or wrong one stops the process
# with a message that names it, rather than failing in the first job.
module ShopConfig
  VARIANTS = %w[naive safe].freeze

  def self.required(name)
    value = ENV.fetch(name, "").strip
    abort "sidekiq-shop: #{name} is not set (see examples/sidekiq-shop/README.md)" if value.empty?
    value
  end

  FAKE_API_URL = required("FAKE_API_URL").chomp("/")
  REDIS_URL = required("REDIS_URL")
  VARIANT = required("SHOP_VARIANT")
  unless VARIANTS.include?(VARIANT)
    abort "sidekiq-shop: SHOP_VARIANT must be one of #{VARIANTS.join(", ")}, got #{VARIANT.inspect}"
  end
  begin
    URI.parse(FAKE_API_URL).then { |u| raise URI::InvalidURIError, "no host" unless u.host }
  rescue URI::InvalidURIError => e
    abort "sidekiq-shop: FAKE_API_URL is not a URL: #{FAKE_API_URL.inspect} (#{e.message})"
  end

  # The template the confirmation email is sent with; the target files'
  # [match] finds the order in its template_data.order_id.
  CONFIRMATION_TEMPLATE = "order-confirmation"
  # Cents per item. Never 9999 for one item: the fake payments service
  # declines exactly that amount.
  PRICE_CENTS = 1250
end

Sidekiq.configure_client do |config|
  config.redis = { url: ShopConfig::REDIS_URL }
end

# Talks to the fake services. Every call is one log line (what was asked,
# what came back, how long it took) and has short timeouts, so a slow or
# silent provider turns into an error Sidekiq retries instead of a stuck
# thread.
module Providers
  # The call may succeed if tried again: 5xx, 429, 409 (same key still in
  # flight), a timeout or a dropped connection. Sidekiq retries these.
  class TransientError < StandardError
    # Seconds the provider asked us to wait (429 Retry-After), if it did.
    attr_reader :retry_after

    def initialize(message, retry_after: nil)
      super(message)
      @retry_after = retry_after
    end
  end

  # The provider refused the request itself (a 4xx other than 409/429):
  # sending it again cannot help, so the job dies at once and is reported.
  class PermanentError < StandardError; end

  NETWORK_ERRORS = [
    Net::OpenTimeout, Net::ReadTimeout, Net::WriteTimeout, EOFError, IOError,
    Errno::ECONNRESET, Errno::ECONNREFUSED, Errno::EPIPE, SocketError
  ].freeze
  TIMEOUT_S = 5

  def self.charge(order, key:)
    call(:post, "/payments/charge", {
      customer_id: "cus_#{order.fetch("email")}",
      payment_method_id: "pm_card_visa",
      amount_cents: Integer(order.fetch("amount_cents")),
      metadata: { order_id: Integer(order.fetch("id")) }
    }, key: key)
  end

  def self.send_confirmation(order, key:)
    call(:post, "/email/send", {
      to: order.fetch("email"),
      template_id: ShopConfig::CONFIRMATION_TEMPLATE,
      template_data: {
        order_id: Integer(order.fetch("id")),
        quantity: Integer(order.fetch("quantity")),
        amount_cents: Integer(order.fetch("amount_cents"))
      }
    }, key: key)
  end

  def self.request_fulfillment(order, key:)
    call(:put, "/fulfillment/request", {
      customer_id: "cus_#{order.fetch("email")}",
      address: order.fetch("address"),
      product_id: 1,
      quantity: Integer(order.fetch("quantity")),
      metadata: { order_id: Integer(order.fetch("id")) }
    }, key: key)
  end

  def self.notify(exception_class, exception_message)
    call(:put, "/error-catcher/notification",
      { exception_class: exception_class, exception_message: exception_message }, key: nil)
  end

  # One request; the parsed JSON answer on 2xx, else an exception saying
  # whether a retry can help.
  def self.call(method, path, body, key:)
    uri = URI.parse(ShopConfig::FAKE_API_URL + path)
    request = (method == :put ? Net::HTTP::Put : Net::HTTP::Post).new(uri)
    request["Content-Type"] = "application/json"
    request["Accept"] = "application/json"
    request["Idempotency-Key"] = key if key
    request.body = JSON.generate(body)
    what = "#{method.upcase} #{path}#{" key=#{key}" if key}"
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    response = begin
      http(uri).request(request)
    rescue *NETWORK_ERRORS => e
      log(what, started, "#{e.class}: #{e.message}")
      raise TransientError, "#{what}: #{e.class}: #{e.message}"
    end
    log(what, started, "#{response.code} #{response.body.to_s.strip[0, 200]}")
    judge(what, response)
  end

  def self.http(uri)
    http = Net::HTTP.new(uri.host, uri.port)
    http.open_timeout = TIMEOUT_S
    http.read_timeout = TIMEOUT_S
    http.write_timeout = TIMEOUT_S
    # Net::HTTP silently sends an idempotent method (PUT) a second time when
    # the connection drops; the retry is Sidekiq's business, so it shows.
    http.max_retries = 0
    http
  end

  def self.judge(what, response)
    status = response.code.to_i
    case status
    when 200..299
      response.body.to_s.empty? ? {} : JSON.parse(response.body)
    when 429
      retry_after = Integer(response["Retry-After"], exception: false)
      raise TransientError.new("#{what}: 429 throttled", retry_after: retry_after)
    when 409, 500..599
      raise TransientError, "#{what}: #{status} #{response.body.to_s.strip[0, 200]}"
    else
      raise PermanentError, "#{what}: #{status} #{response.body.to_s.strip[0, 200]}"
    end
  rescue JSON::ParserError => e
    raise TransientError, "#{what}: #{status} with a body that is not JSON (#{e.message})"
  end

  def self.log(what, started, outcome)
    ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round
    Sidekiq.logger.info("provider #{what} -> #{outcome} (#{ms} ms)")
  end
end

# Orders as Redis hashes (`shop:order:ID`), ids from `INCR shop:order_id`.
# Each job step writes what the provider answered onto the order, which is
# what lets the safe jobs skip a step that is already done.
module Orders
  class NotFound < Providers::PermanentError; end

  def self.create(email:, quantity:, address:)
    Sidekiq.redis do |redis|
      id = redis.incr("shop:order_id")
      redis.hset("shop:order:#{id}", {
        "id" => id.to_s, "email" => email, "quantity" => quantity.to_s,
        "address" => address, "amount_cents" => (quantity * ShopConfig::PRICE_CENTS).to_s,
        "status" => "placed", "variant" => ShopConfig::VARIANT,
        "created_at" => Time.now.utc.iso8601(3)
      })
      id
    end
  end

  def self.find(id)
    order = Sidekiq.redis { |redis| redis.hgetall("shop:order:#{Integer(id)}") }
    order.empty? ? nil : order
  end

  def self.find!(id)
    find(id) or raise NotFound, "Couldn't find Order with 'id'=#{id}"
  end

  def self.update(id, fields)
    Sidekiq.redis { |redis| redis.hset("shop:order:#{Integer(id)}", fields.transform_keys(&:to_s)) }
  end

  def self.all
    last = Sidekiq.redis { |redis| redis.get("shop:order_id") }.to_i
    (1..last).filter_map { |id| find(id) }
  end
end

# What every job of the shop shares: Sidekiq's usual 25 retries, and a
# throttled call waits as long as the provider asked.
class ShopJob
  include Sidekiq::Worker
  sidekiq_options retry: 25

  sidekiq_retry_in do |_count, exception|
    exception.retry_after if exception.is_a?(Providers::TransientError)
  end

  private

  def note(order_id, message)
    logger.info("order #{order_id}: #{message}")
  end
end

# naive: everything in one job, no keys. A retry after any failure repeats
# every call that already succeeded.
class CompleteOrderJob < ShopJob
  def perform(order_id)
    order = Orders.find!(order_id)
    charge = Providers.charge(order, key: nil)
    if charge["status"] == "declined"
      Orders.update(order_id, status: "declined", explanation: charge["explanation"].to_s)
      return note(order_id, "declined")
    end
    Orders.update(order_id, charge_id: charge.fetch("charge_id"), status: "charged")
    email = Providers.send_confirmation(order, key: nil)
    Orders.update(order_id, email_id: email.fetch("email_id"), status: "emailed")
    shipment = Providers.request_fulfillment(order, key: nil)
    Orders.update(order_id, fulfillment_request_id: shipment.fetch("request_id"), status: "complete")
    note(order_id, "complete")
  end
end

# safe, step 1: charge once. The key makes a retried charge replay the
# first one; the recorded charge_id makes a re-run skip the call.
class ChargeOrderJob < ShopJob
  def perform(order_id)
    order = Orders.find!(order_id)
    return note(order_id, "declined earlier; nothing to do") if order["status"] == "declined"

    if order["charge_id"]
      note(order_id, "already charged (#{order["charge_id"]}), skipping the charge")
    else
      charge = Providers.charge(order, key: "charge-order-#{order_id}")
      if charge["status"] == "declined"
        Orders.update(order_id, status: "declined", explanation: charge["explanation"].to_s)
        return note(order_id, "declined")
      end
      Orders.update(order_id, charge_id: charge.fetch("charge_id"), status: "charged")
    end
    SendConfirmationJob.perform_async(order_id)
  end
end

# safe, step 2: one confirmation email, keyed by the order.
class SendConfirmationJob < ShopJob
  def perform(order_id)
    order = Orders.find!(order_id)
    if order["email_id"]
      note(order_id, "confirmation already sent (#{order["email_id"]}), skipping the email")
    else
      email = Providers.send_confirmation(order, key: "confirmation-email-order-#{order_id}")
      Orders.update(order_id, email_id: email.fetch("email_id"), status: "emailed")
    end
    RequestFulfillmentJob.perform_async(order_id)
  end
end

# safe, step 3: one shipment request, keyed by the order.
class RequestFulfillmentJob < ShopJob
  def perform(order_id)
    order = Orders.find!(order_id)
    if order["fulfillment_request_id"]
      note(order_id, "fulfillment already requested (#{order["fulfillment_request_id"]}), skipping")
    else
      shipment = Providers.request_fulfillment(order, key: "fulfillment-order-#{order_id}")
      Orders.update(order_id, fulfillment_request_id: shipment.fetch("request_id"))
    end
    Orders.update(order_id, status: "complete")
    note(order_id, "complete")
  end
end

# Tells the error catcher a job will not run again, as the book's app does
# with its error-reporting service. Only deaths are reported: a transient
# error is Sidekiq's to retry, and reporting each one would bury the
# deaths that need a human in noise.
module ReportDeaths
  def self.call(job, exception)
    Providers.notify(exception.class.name, "#{job["class"]} won't be retried: #{exception.message}")
  rescue Providers::TransientError, Providers::PermanentError => e
    Sidekiq.logger.warn("could not tell the error catcher about #{job["jid"]}: #{e.message}")
  end
end

# Sidekiq 6.4 has no way for a job to say "do not retry this error", so this
# server middleware does it: a permanent error sends the job straight to the
# dead set and to the death handlers, as exhausted retries would.
class DieOnPermanentError
  def call(_worker, job, _queue)
    yield
  rescue Providers::PermanentError => e
    job["error_class"] = e.class.name
    job["error_message"] = e.message
    job["failed_at"] ||= Time.now.to_f
    Sidekiq.logger.error("#{job["class"]} #{job["jid"]} dies at once: #{e.message}")
    Sidekiq::DeadSet.new.kill(Sidekiq.dump_json(job), notify_failure: false)
    Sidekiq.death_handlers.each { |handler| handler.call(job, e) }
  end
end

Sidekiq.configure_server do |config|
  config.redis = { url: ShopConfig::REDIS_URL }
  config.death_handlers << ReportDeaths.method(:call)
  config.server_middleware { |chain| chain.add DieOnPermanentError }
  # A provider's transient failure is expected and Sidekiq retries it: one
  # line says so. Anything else (a bug) keeps Sidekiq's full report.
  full_report = config.error_handlers.dup
  config.error_handlers.replace([lambda do |exception, context|
    if exception.is_a?(Providers::TransientError)
      job = context[:job] || {}
      Sidekiq.logger.warn("#{job["class"]} #{job["jid"]} args=#{job["args"].inspect} will be retried: #{exception.message}")
    else
      full_report.each { |handler| handler.call(exception, context) }
    end
  end])
end

# The web side: place an order, look at it.
class ShopApp < Sinatra::Base
  FIRST_JOB = { "naive" => CompleteOrderJob, "safe" => ChargeOrderJob }.freeze
  EMAIL = /\A[^@\s]+@[^@\s]+\z/

  set :logging, true

  # Readiness: answers as soon as the app is loaded.
  get "/" do
    content_type :json
    JSON.generate(status: "ok", shop: "sidekiq-shop", variant: ShopConfig::VARIANT)
  end

  # Form fields order[quantity], order[email] (and optionally
  # order[address]); 303 to the order's page, whose last path segment is its id.
  post "/orders" do
    fields = params["order"].is_a?(Hash) ? params["order"] : {}
    quantity = Integer(fields["quantity"].to_s, exception: false)
    email = fields["email"].to_s.strip
    address = fields["address"].to_s.strip
    address = "1 Main Street, Springfield" if address.empty?
    errors = []
    errors << "order[quantity] must be a whole number from 1 to 100" unless quantity&.between?(1, 100)
    errors << "order[email] must be an email address" unless EMAIL.match?(email)
    halt 422, { "Content-Type" => "application/json" }, JSON.generate(errors: errors) unless errors.empty?

    id = Orders.create(email: email, quantity: quantity, address: address)
    jid = FIRST_JOB.fetch(ShopConfig::VARIANT).perform_async(id)
    logger.info("order #{id} placed (#{quantity} for #{email}), job #{jid}")
    redirect to("/orders/#{id}"), 303
  end

  get "/orders" do
    content_type :json
    JSON.generate(Orders.all)
  end

  get "/orders/:id" do
    content_type :json
    id = Integer(params["id"], exception: false)
    order = id && Orders.find(id)
    halt 404, JSON.generate(error: "no order #{params["id"]}") unless order
    JSON.generate(order)
  end
end
