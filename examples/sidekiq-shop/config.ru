# frozen_string_literal: true

# The shop's web side for puma: `puma -b tcp://127.0.0.1:PORT config.ru`.
# The same app.rb is what `sidekiq -r app.rb` loads, so the web process and
# the workers agree on the job classes.
require_relative "app"

run ShopApp
