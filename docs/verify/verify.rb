# Verify qlar webhooks in Ruby: a complete receiver using only Ruby's standard and bundled libraries (Ruby 3.0+;
# WEBrick is a bundled gem: Debian's ruby package installs it, elsewhere `gem install webrick`).
#
# Run:  QLAR_WEBHOOK_SECRET=whsec_... PORT=8000 ruby verify.rb
# Plain HTTP: put it behind your HTTPS proxy (qlar only delivers to https:// URLs).
# Verifies the raw body in constant time (Standard Webhooks headers when present, with a 300 s timestamp
# window, else X-Qlar-Signature), answers 401 on mismatch, parses JSON only after that, skips unknown event
# types with 2xx and processes each eventId once.
require "base64"
require "json"
require "openssl"
require "webrick"

SECRET = ENV.fetch("QLAR_WEBHOOK_SECRET") # the whole whsec_... string, from your secret manager
TOLERANCE_SECONDS = 300 # refuse a webhook-timestamp further than this from now (a replay)
MAX_BODY_BYTES = 1024 * 1024
HANDLED_TYPES = %w[created claimed completed released].freeze
SEEN = {} # processed eventIds, in memory for this sample: keep them in your database instead
SEEN_LOCK = Mutex.new

# X-Qlar-Signature: sha256=<hex HMAC-SHA256 of the raw body, key = the whsec_ string>; comma-separated.
def qlar_signature_ok?(body, header)
  expected = "sha256=" + OpenSSL::HMAC.hexdigest("SHA256", SECRET, body)
  header.split(",").any? { |v| OpenSSL.secure_compare(v.strip, expected) } # constant time
end

# webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body, key = base64 after whsec_>; space-separated.
def standard_signature_ok?(body, id, stamp, header)
  key = Base64.strict_decode64(SECRET.delete_prefix("whsec_"))
  expected = "v1," + Base64.strict_encode64(OpenSSL::HMAC.digest("SHA256", key, "#{id}.#{stamp}.".b + body))
  header.split(" ").any? { |v| v.start_with?("v1,") && OpenSSL.secure_compare(v, expected) }
end

# Why the request is not signed with our key (nil when it is).
def refusal(body, request)
  if request["webhook-signature"] || request["webhook-timestamp"]
    id, stamp, signature = %w[webhook-id webhook-timestamp webhook-signature].map { |n| request[n].to_s.strip }
    return "missing webhook-id, webhook-timestamp or webhook-signature" if [id, stamp, signature].any?(&:empty?)
    return "webhook-timestamp is not a Unix time in seconds" unless stamp.match?(/\A[0-9]{1,12}\z/)
    return "webhook-timestamp outside the allowed window" if (stamp.to_i - Time.now.to_i).abs > TOLERANCE_SECONDS
    return standard_signature_ok?(body, id, stamp, signature) ? nil : "signature mismatch"
  end
  signature = request["x-qlar-signature"].to_s.strip
  return "missing signature" if signature.empty?
  qlar_signature_ok?(body, signature) ? nil : "signature mismatch"
end

# Your work goes here: keep it quick (queue anything slow) so qlar gets its 2xx in time.
def handle(event)
  puts "#{event['eventType']} #{event['eventId']} escalation #{event['escalation']['id']}"
end

def answer(response, status, document)
  response.status = status
  response["Content-Type"] = "application/json"
  response["Allow"] = "POST" if status == 405
  response.body = JSON.generate(document)
end

def receive(request, response)
  return answer(response, 405, error: "method not allowed") unless request.request_method == "POST"
  return answer(response, 413, error: "body too large") if request.content_length > MAX_BODY_BYTES
  body = (request.body || "").b # the raw bytes, exactly as signed
  problem = refusal(body, request)
  return answer(response, 401, error: problem) if problem

  event = begin
    JSON.parse(body.dup.force_encoding("UTF-8")) # only now: the bytes are ours
  rescue JSON::ParserError
    nil
  end
  unless event.is_a?(Hash) && event["eventType"].is_a?(String) && event["escalation"].is_a?(Hash)
    return answer(response, 400, error: "not a qlar event")
  end
  return answer(response, 200, status: "skipped") unless HANDLED_TYPES.include?(event["eventType"]) # new types may appear

  event_id = event["eventId"] || request["webhook-id"]
  first = SEEN_LOCK.synchronize { SEEN[event_id] ? false : (SEEN[event_id] = true) }
  return answer(response, 200, status: "duplicate") unless first # a retry of an event already processed

  begin
    handle(event)
  rescue StandardError
    SEEN_LOCK.synchronize { SEEN.delete(event_id) } # let qlar's retry be processed
    return answer(response, 500, error: "processing failed")
  end
  answer(response, 200, status: "processed")
end

server = WEBrick::HTTPServer.new(BindAddress: ENV.fetch("HOST", "0.0.0.0"), Port: Integer(ENV.fetch("PORT", "8000")),
                                 AccessLog: [], MaxRequestBodySize: MAX_BODY_BYTES)
server.mount_proc("/") { |request, response| receive(request, response) }
trap("TERM") { server.shutdown }
trap("INT") { server.shutdown }
puts "listening on #{ENV.fetch('HOST', '0.0.0.0')}:#{server.config[:Port]}"
$stdout.flush
server.start
