-- wrk script: every request a new charge for a new order.
-- wrk -t1 -c64 -d10s --latency -s fake-services/benches/charge.lua http://127.0.0.1:3001
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = '{"customer_id":"cus_1","payment_method_id":"pm_1","amount_cents":12300,"metadata":{"order_id":' .. counter .. '}}'
  return wrk.format(nil, "/payments/charge", nil, body)
end
