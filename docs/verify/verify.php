<?php
// Verify qlar webhooks in PHP: a complete receiver using only PHP's bundled extensions (PHP 8.0+).
//
// Run:  QLAR_WEBHOOK_SECRET=whsec_... php -S "0.0.0.0:${PORT:-8000}" verify.php
// (or serve this file with your usual web server and PHP-FPM). Plain HTTP: put it behind your HTTPS proxy
// (qlar only delivers to https:// URLs).
// Verifies the raw body in constant time (Standard Webhooks headers when present, with a 300 s timestamp
// window, else X-Qlar-Signature), answers 401 on mismatch, parses JSON only after that, skips unknown event
// types with 2xx and processes each eventId once.
declare(strict_types=1);

const TOLERANCE_SECONDS = 300; // refuse a webhook-timestamp further than this from now (a replay)
const MAX_BODY_BYTES = 1024 * 1024;
const HANDLED_TYPES = ['created', 'claimed', 'completed', 'released'];

function answer(int $status, array $document): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    if ($status === 405) {
        header('Allow: POST');
    }
    echo json_encode($document);
}

// X-Qlar-Signature: sha256=<hex HMAC-SHA256 of the raw body, key = the whsec_ string>; comma-separated.
function qlar_signature_ok(string $secret, string $body, string $header): bool
{
    $expected = 'sha256=' . hash_hmac('sha256', $body, $secret);
    foreach (explode(',', $header) as $value) {
        if (hash_equals($expected, trim($value))) { // constant time
            return true;
        }
    }
    return false;
}

// webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body, key = base64 after whsec_>; space-separated.
function standard_signature_ok(string $secret, string $body, string $id, string $stamp, string $header): bool
{
    $key = base64_decode(preg_replace('/^whsec_/', '', $secret), true);
    $expected = 'v1,' . base64_encode(hash_hmac('sha256', "$id.$stamp.$body", (string) $key, true));
    foreach (preg_split('/\s+/', $header, -1, PREG_SPLIT_NO_EMPTY) as $value) {
        if (str_starts_with($value, 'v1,') && hash_equals($expected, $value)) {
            return true;
        }
    }
    return false;
}

// Why the request is not signed with our key (null when it is).
function refusal(string $secret, string $body): ?string
{
    if (isset($_SERVER['HTTP_WEBHOOK_SIGNATURE']) || isset($_SERVER['HTTP_WEBHOOK_TIMESTAMP'])) {
        $id = trim($_SERVER['HTTP_WEBHOOK_ID'] ?? '');
        $stamp = trim($_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '');
        $signature = trim($_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '');
        if ($id === '' || $stamp === '' || $signature === '') {
            return 'missing webhook-id, webhook-timestamp or webhook-signature';
        }
        if (!preg_match('/^[0-9]{1,12}$/', $stamp)) {
            return 'webhook-timestamp is not a Unix time in seconds';
        }
        if (abs((int) $stamp - time()) > TOLERANCE_SECONDS) {
            return 'webhook-timestamp outside the allowed window';
        }
        return standard_signature_ok($secret, $body, $id, $stamp, $signature) ? null : 'signature mismatch';
    }
    $signature = trim($_SERVER['HTTP_X_QLAR_SIGNATURE'] ?? '');
    if ($signature === '') {
        return 'missing signature';
    }
    return qlar_signature_ok($secret, $body, $signature) ? null : 'signature mismatch';
}

// Mark an eventId processed; false when it already was. PHP keeps no memory between requests, so this sample
// uses one file per eventId (created atomically): keep them in your database instead.
function first_time(string $eventId): bool
{
    $dir = getenv('QLAR_SEEN_DIR') ?: sys_get_temp_dir() . '/qlar-seen-events';
    if (!is_dir($dir)) {
        @mkdir($dir, 0700, true);
    }
    $file = @fopen($dir . '/' . hash('sha256', $eventId), 'x');
    if ($file === false) {
        return false;
    }
    fclose($file);
    return true;
}

function forget(string $eventId): void
{
    $dir = getenv('QLAR_SEEN_DIR') ?: sys_get_temp_dir() . '/qlar-seen-events';
    @unlink($dir . '/' . hash('sha256', $eventId));
}

// Your work goes here: keep it quick (queue anything slow) so qlar gets its 2xx in time.
function handle(array $event): void
{
    error_log("{$event['eventType']} " . ($event['eventId'] ?? '') . ' escalation ' . json_encode($event['escalation']['id'] ?? null));
}

function receive(): void
{
    $secret = getenv('QLAR_WEBHOOK_SECRET'); // the whole whsec_... string, from your secret manager
    if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
        answer(405, ['error' => 'method not allowed']);
        return;
    }
    if ((int) ($_SERVER['CONTENT_LENGTH'] ?? 0) > MAX_BODY_BYTES) {
        answer(413, ['error' => 'body too large']);
        return;
    }
    $body = file_get_contents('php://input'); // the raw bytes, exactly as signed
    $problem = $secret ? refusal($secret, $body) : 'QLAR_WEBHOOK_SECRET is not set';
    if ($problem !== null) {
        answer(401, ['error' => $problem]);
        return;
    }
    $event = json_decode($body, true); // only now: the bytes are ours
    if (!is_array($event) || !is_string($event['eventType'] ?? null) || !is_array($event['escalation'] ?? null)) {
        answer(400, ['error' => 'not a qlar event']);
        return;
    }
    if (!in_array($event['eventType'], HANDLED_TYPES, true)) {
        answer(200, ['status' => 'skipped']); // new event types may appear: ignore them
        return;
    }
    $eventId = (string) ($event['eventId'] ?? $_SERVER['HTTP_WEBHOOK_ID'] ?? '');
    if (!first_time($eventId)) {
        answer(200, ['status' => 'duplicate']); // a retry of an event already processed
        return;
    }
    try {
        handle($event);
    } catch (Throwable $e) {
        forget($eventId); // let qlar's retry be processed
        answer(500, ['error' => 'processing failed']);
        return;
    }
    answer(200, ['status' => 'processed']);
}

receive();
