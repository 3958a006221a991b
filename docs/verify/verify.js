// Verify qlar webhooks in Node.js: a complete receiver using only Node's standard modules (Node 18+).
//
// Run:  QLAR_WEBHOOK_SECRET=whsec_... PORT=8000 node verify.js
// Plain HTTP: put it behind your HTTPS proxy (qlar only delivers to https:// URLs).
// Verifies the raw body in constant time (Standard Webhooks headers when present, with a 300 s timestamp
// window, else X-Qlar-Signature), answers 401 on mismatch, parses JSON only after that, skips unknown event
// types with 2xx and processes each eventId once.
"use strict";
const crypto = require("node:crypto");
const http = require("node:http");

const SECRET = process.env.QLAR_WEBHOOK_SECRET; // the whole whsec_... string, from your secret manager
if (!SECRET) throw new Error("set QLAR_WEBHOOK_SECRET");
const TOLERANCE_SECONDS = 300; // refuse a webhook-timestamp further than this from now (a replay)
const MAX_BODY_BYTES = 1024 * 1024;
const HANDLED_TYPES = new Set(["created", "claimed", "completed", "released"]);
const seen = new Set(); // processed eventIds, in memory for this sample: keep them in your database instead

function safeEqual(a, b) {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y); // the length is public; the bytes are compared in constant time
}

// X-Qlar-Signature: sha256=<hex HMAC-SHA256 of the raw body, key = the whsec_ string>; comma-separated.
function qlarSignatureOk(body, header) {
  const expected = "sha256=" + crypto.createHmac("sha256", SECRET).update(body).digest("hex");
  return header.split(",").some((v) => safeEqual(v.trim(), expected));
}

// webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body, key = base64 after whsec_>; space-separated.
function standardSignatureOk(body, id, stamp, header) {
  const key = Buffer.from(SECRET.replace(/^whsec_/, ""), "base64");
  const digest = crypto.createHmac("sha256", key).update(`${id}.${stamp}.`).update(body).digest("base64");
  return header.split(" ").filter((v) => v.startsWith("v1,")).some((v) => safeEqual(v, "v1," + digest));
}

// Why the request is not signed with our key (null when it is).
function refusal(body, headers) {
  if (headers["webhook-signature"] !== undefined || headers["webhook-timestamp"] !== undefined) {
    const [id, stamp, signature] = ["webhook-id", "webhook-timestamp", "webhook-signature"]
      .map((name) => (headers[name] || "").trim());
    if (!id || !stamp || !signature) return "missing webhook-id, webhook-timestamp or webhook-signature";
    if (!/^[0-9]{1,12}$/.test(stamp)) return "webhook-timestamp is not a Unix time in seconds";
    if (Math.abs(Number(stamp) - Math.floor(Date.now() / 1000)) > TOLERANCE_SECONDS) {
      return "webhook-timestamp outside the allowed window";
    }
    return standardSignatureOk(body, id, stamp, signature) ? null : "signature mismatch";
  }
  const signature = (headers["x-qlar-signature"] || "").trim();
  if (!signature) return "missing signature";
  return qlarSignatureOk(body, signature) ? null : "signature mismatch";
}

// Your work goes here: keep it quick (queue anything slow) so qlar gets its 2xx in time.
function handle(event) {
  console.log(`${event.eventType} ${event.eventId} escalation ${event.escalation.id}`);
}

function answer(res, status, document) {
  const headers = { "Content-Type": "application/json" };
  if (status === 405) headers.Allow = "POST";
  res.writeHead(status, headers).end(JSON.stringify(document));
}

function receive(req, res, body) {
  const problem = refusal(body, req.headers);
  if (problem) return answer(res, 401, { error: problem });
  let event;
  try {
    event = JSON.parse(body.toString("utf8")); // only now: the bytes are ours
  } catch {
    event = null;
  }
  if (!event || typeof event !== "object" || typeof event.eventType !== "string"
      || !event.escalation || typeof event.escalation !== "object") {
    return answer(res, 400, { error: "not a qlar event" });
  }
  if (!HANDLED_TYPES.has(event.eventType)) return answer(res, 200, { status: "skipped" }); // new types may appear
  const eventId = event.eventId || req.headers["webhook-id"];
  if (seen.has(eventId)) return answer(res, 200, { status: "duplicate" }); // a retry of an event already processed
  seen.add(eventId);
  try {
    handle(event);
  } catch (err) {
    seen.delete(eventId); // let qlar's retry be processed
    return answer(res, 500, { error: "processing failed" });
  }
  return answer(res, 200, { status: "processed" });
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST") return answer(res, 405, { error: "method not allowed" });
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      answer(res, 413, { error: "body too large" });
      req.destroy();
    } else {
      chunks.push(chunk);
    }
  });
  req.on("end", () => receive(req, res, Buffer.concat(chunks))); // the raw bytes, exactly as signed
});

server.listen(Number(process.env.PORT || 8000), process.env.HOST || "0.0.0.0", () => {
  console.log(`listening on ${server.address().address}:${server.address().port}`);
});
