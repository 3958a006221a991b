// Verify qlar webhooks in Java: a complete receiver using only the JDK (Java 17+; com.sun.net.httpserver is in the JDK).
//
// Run:  QLAR_WEBHOOK_SECRET=whsec_... PORT=8000 java Verify.java
// Plain HTTP: put it behind your HTTPS proxy (qlar only delivers to https:// URLs).
// Verifies the raw body in constant time (Standard Webhooks headers when present, with a 300 s timestamp
// window, else X-Qlar-Signature), answers 401 on mismatch, parses JSON only after that, skips unknown event
// types with 2xx and processes each eventId once. The JDK has no JSON parser, so a small one is included below;
// with Jackson or Gson in your project, use that instead.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Verify {
    static final String SECRET = System.getenv("QLAR_WEBHOOK_SECRET"); // the whole whsec_... string, from your secret manager
    static final long TOLERANCE_SECONDS = 300; // refuse a webhook-timestamp further than this from now (a replay)
    static final int MAX_BODY_BYTES = 1024 * 1024;
    static final Set<String> HANDLED_TYPES = Set.of("created", "claimed", "completed", "released");
    // Processed eventIds, in memory for this sample: keep them in your database instead.
    static final Set<String> SEEN = ConcurrentHashMap.newKeySet();

    static byte[] hmac(byte[] key, byte[] message) throws GeneralSecurityException {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(message);
    }

    static boolean same(String a, String b) { // constant time
        return MessageDigest.isEqual(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
    }

    // X-Qlar-Signature: sha256=<hex HMAC-SHA256 of the raw body, key = the whsec_ string>; comma-separated.
    static boolean qlarSignatureOk(byte[] body, String header) throws GeneralSecurityException {
        String expected = "sha256=" + HexFormat.of().formatHex(hmac(SECRET.getBytes(StandardCharsets.UTF_8), body));
        boolean ok = false;
        for (String value : header.split(",")) ok |= same(value.trim(), expected);
        return ok;
    }

    // webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body, key = base64 after whsec_>; space-separated.
    static boolean standardSignatureOk(byte[] body, String id, String stamp, String header)
            throws GeneralSecurityException {
        byte[] key = Base64.getDecoder().decode(SECRET.replaceFirst("^whsec_", ""));
        byte[] prefix = (id + "." + stamp + ".").getBytes(StandardCharsets.UTF_8);
        byte[] message = new byte[prefix.length + body.length];
        System.arraycopy(prefix, 0, message, 0, prefix.length);
        System.arraycopy(body, 0, message, prefix.length, body.length);
        String expected = "v1," + Base64.getEncoder().encodeToString(hmac(key, message));
        boolean ok = false;
        for (String value : header.trim().split("\\s+")) ok |= value.startsWith("v1,") && same(value, expected);
        return ok;
    }

    static String header(HttpExchange exchange, String name) {
        String value = exchange.getRequestHeaders().getFirst(name);
        return value == null ? "" : value.trim();
    }

    // Why the request is not signed with our key (null when it is).
    static String refusal(byte[] body, HttpExchange exchange) throws GeneralSecurityException {
        var headers = exchange.getRequestHeaders();
        if (headers.containsKey("webhook-signature") || headers.containsKey("webhook-timestamp")) {
            String id = header(exchange, "webhook-id"), stamp = header(exchange, "webhook-timestamp");
            String signature = header(exchange, "webhook-signature");
            if (id.isEmpty() || stamp.isEmpty() || signature.isEmpty()) {
                return "missing webhook-id, webhook-timestamp or webhook-signature";
            }
            if (!stamp.matches("[0-9]{1,12}")) return "webhook-timestamp is not a Unix time in seconds";
            if (Math.abs(Long.parseLong(stamp) - System.currentTimeMillis() / 1000) > TOLERANCE_SECONDS) {
                return "webhook-timestamp outside the allowed window";
            }
            return standardSignatureOk(body, id, stamp, signature) ? null : "signature mismatch";
        }
        String signature = header(exchange, "X-Qlar-Signature");
        if (signature.isEmpty()) return "missing signature";
        return qlarSignatureOk(body, signature) ? null : "signature mismatch";
    }

    // Your work goes here: keep it quick (queue anything slow) so qlar gets its 2xx in time.
    static void handle(Map<?, ?> event) {
        Map<?, ?> escalation = (Map<?, ?>) event.get("escalation");
        System.out.println(event.get("eventType") + " " + event.get("eventId") + " escalation " + escalation.get("id"));
    }

    static void answer(HttpExchange exchange, int status, String key, String value) throws IOException {
        byte[] data = ("{\"" + key + "\": \"" + value + "\"}").getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        if (status == 405) exchange.getResponseHeaders().set("Allow", "POST");
        exchange.sendResponseHeaders(status, data.length);
        exchange.getResponseBody().write(data);
        exchange.close();
    }

    static void receive(HttpExchange exchange) throws IOException, GeneralSecurityException {
        if (!exchange.getRequestMethod().equals("POST")) {
            answer(exchange, 405, "error", "method not allowed");
            return;
        }
        byte[] body; // the raw bytes, exactly as signed
        try (InputStream in = exchange.getRequestBody()) {
            body = in.readNBytes(MAX_BODY_BYTES + 1);
        }
        if (body.length > MAX_BODY_BYTES) {
            answer(exchange, 413, "error", "body too large");
            return;
        }
        String problem = refusal(body, exchange);
        if (problem != null) {
            answer(exchange, 401, "error", problem);
            return;
        }
        Object parsed; // only now: the bytes are ours
        try {
            parsed = new Json(new String(body, StandardCharsets.UTF_8)).document();
        } catch (IllegalArgumentException e) {
            parsed = null;
        }
        if (!(parsed instanceof Map<?, ?> event) || !(event.get("eventType") instanceof String type)
                || !(event.get("escalation") instanceof Map)) {
            answer(exchange, 400, "error", "not a qlar event");
            return;
        }
        if (!HANDLED_TYPES.contains(type)) {
            answer(exchange, 200, "status", "skipped"); // new event types may appear: ignore them
            return;
        }
        String eventId = event.get("eventId") instanceof String id ? id : header(exchange, "webhook-id");
        if (!SEEN.add(eventId)) {
            answer(exchange, 200, "status", "duplicate"); // a retry of an event already processed
            return;
        }
        try {
            handle(event);
        } catch (RuntimeException e) {
            SEEN.remove(eventId); // let qlar's retry be processed
            answer(exchange, 500, "error", "processing failed");
            return;
        }
        answer(exchange, 200, "status", "processed");
    }

    public static void main(String[] args) throws IOException {
        if (SECRET == null || SECRET.isEmpty()) throw new IllegalStateException("set QLAR_WEBHOOK_SECRET");
        String host = System.getenv().getOrDefault("HOST", "0.0.0.0");
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8000"));
        HttpServer server = HttpServer.create(new InetSocketAddress(host, port), 0);
        server.createContext("/", exchange -> {
            try {
                receive(exchange);
            } catch (GeneralSecurityException | RuntimeException e) {
                answer(exchange, 500, "error", "internal error");
            }
        });
        server.setExecutor(Executors.newFixedThreadPool(8));
        server.start();
        System.out.println("listening on " + host + ":" + port);
    }

    /** A small, strict JSON parser: objects become Maps, arrays Lists, numbers Doubles. */
    static final class Json {
        private final String text;
        private int at;

        Json(String text) {
            this.text = text;
        }

        Object document() {
            Object value = value(0);
            skipSpace();
            if (at != text.length()) throw new IllegalArgumentException("trailing characters");
            return value;
        }

        private void skipSpace() {
            while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) at++;
        }

        private char next() {
            if (at >= text.length()) throw new IllegalArgumentException("unexpected end");
            return text.charAt(at++);
        }

        private void expect(String word) {
            if (!text.startsWith(word, at)) throw new IllegalArgumentException("expected " + word);
            at += word.length();
        }

        private Object value(int depth) {
            if (depth > 64) throw new IllegalArgumentException("too deep");
            skipSpace();
            if (at >= text.length()) throw new IllegalArgumentException("unexpected end");
            char c = text.charAt(at);
            switch (c) {
                case '{': return object(depth);
                case '[': return array(depth);
                case '"': return string();
                case 't': expect("true"); return Boolean.TRUE;
                case 'f': expect("false"); return Boolean.FALSE;
                case 'n': expect("null"); return null;
                default: return number();
            }
        }

        private Map<String, Object> object(int depth) {
            Map<String, Object> map = new HashMap<>();
            at++;
            skipSpace();
            if (at < text.length() && text.charAt(at) == '}') {
                at++;
                return map;
            }
            while (true) {
                skipSpace();
                if (at >= text.length() || text.charAt(at) != '"') throw new IllegalArgumentException("expected a key");
                String key = string();
                skipSpace();
                if (next() != ':') throw new IllegalArgumentException("expected :");
                map.put(key, value(depth + 1));
                skipSpace();
                char c = next();
                if (c == '}') return map;
                if (c != ',') throw new IllegalArgumentException("expected , or }");
            }
        }

        private List<Object> array(int depth) {
            List<Object> list = new ArrayList<>();
            at++;
            skipSpace();
            if (at < text.length() && text.charAt(at) == ']') {
                at++;
                return list;
            }
            while (true) {
                list.add(value(depth + 1));
                skipSpace();
                char c = next();
                if (c == ']') return list;
                if (c != ',') throw new IllegalArgumentException("expected , or ]");
            }
        }

        private String string() {
            StringBuilder out = new StringBuilder();
            at++; // the opening quote
            while (true) {
                char c = next();
                if (c == '"') return out.toString();
                if (c < 0x20) throw new IllegalArgumentException("control character in string");
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char e = next();
                switch (e) {
                    case '"', '\\', '/' -> out.append(e);
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        if (at + 4 > text.length()) throw new IllegalArgumentException("bad \\u escape");
                        try {
                            out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        } catch (NumberFormatException x) {
                            throw new IllegalArgumentException("bad \\u escape");
                        }
                        at += 4;
                    }
                    default -> throw new IllegalArgumentException("bad escape");
                }
            }
        }

        private Double number() {
            int start = at;
            while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) at++;
            String token = text.substring(start, at);
            if (!token.matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) {
                throw new IllegalArgumentException("bad number");
            }
            return Double.valueOf(token);
        }
    }
}
