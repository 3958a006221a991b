// Verify qlar webhooks in Go: a complete receiver using only the standard library (Go 1.19+).
//
// Run:  QLAR_WEBHOOK_SECRET=whsec_... PORT=8000 go run verify.go
// Plain HTTP: put it behind your HTTPS proxy (qlar only delivers to https:// URLs).
// Verifies the raw body in constant time (Standard Webhooks headers when present, with a 300 s timestamp
// window, else X-Qlar-Signature), answers 401 on mismatch, parses JSON only after that, skips unknown event
// types with 2xx and processes each eventId once.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

const toleranceSeconds = 300 // refuse a webhook-timestamp further than this from now (a replay)
const maxBodyBytes = 1 << 20

var (
	secret      = os.Getenv("QLAR_WEBHOOK_SECRET") // the whole whsec_... string, from your secret manager
	handled     = map[string]bool{"created": true, "claimed": true, "completed": true, "released": true}
	unixSeconds = regexp.MustCompile(`^[0-9]{1,12}$`)
	seenMu      sync.Mutex
	seen        = map[string]bool{} // processed eventIds, in memory for this sample: keep them in your database instead
)

func sign(key, message []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(message)
	return mac.Sum(nil)
}

// X-Qlar-Signature: sha256=<hex HMAC-SHA256 of the raw body, key = the whsec_ string>; comma-separated.
func qlarSignatureOK(body []byte, header string) bool {
	expected := []byte("sha256=" + hex.EncodeToString(sign([]byte(secret), body)))
	for _, v := range strings.Split(header, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(v)), expected) { // constant time
			return true
		}
	}
	return false
}

// webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body, key = base64 after whsec_>; space-separated.
func standardSignatureOK(body []byte, id, stamp, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	message := append([]byte(id+"."+stamp+"."), body...)
	expected := []byte("v1," + base64.StdEncoding.EncodeToString(sign(key, message)))
	for _, v := range strings.Fields(header) {
		if strings.HasPrefix(v, "v1,") && hmac.Equal([]byte(v), expected) {
			return true
		}
	}
	return false
}

// refusal says why the request is not signed with our key ("" when it is).
func refusal(body []byte, h http.Header) string {
	_, signed := h["Webhook-Signature"]
	if _, stamped := h["Webhook-Timestamp"]; signed || stamped {
		id := strings.TrimSpace(h.Get("Webhook-Id"))
		stamp := strings.TrimSpace(h.Get("Webhook-Timestamp"))
		signature := strings.TrimSpace(h.Get("Webhook-Signature"))
		if id == "" || stamp == "" || signature == "" {
			return "missing webhook-id, webhook-timestamp or webhook-signature"
		}
		if !unixSeconds.MatchString(stamp) {
			return "webhook-timestamp is not a Unix time in seconds"
		}
		sent, _ := strconv.ParseInt(stamp, 10, 64)
		if offset := sent - time.Now().Unix(); offset > toleranceSeconds || offset < -toleranceSeconds {
			return "webhook-timestamp outside the allowed window"
		}
		if !standardSignatureOK(body, id, stamp, signature) {
			return "signature mismatch"
		}
		return ""
	}
	signature := strings.TrimSpace(h.Get("X-Qlar-Signature"))
	if signature == "" {
		return "missing signature"
	}
	if !qlarSignatureOK(body, signature) {
		return "signature mismatch"
	}
	return ""
}

type event struct {
	EventID    string                 `json:"eventId"`
	EventType  *string                `json:"eventType"`
	Escalation map[string]interface{} `json:"escalation"`
}

// handle is where your work goes: keep it quick (queue anything slow) so qlar gets its 2xx in time.
func handle(e event) error {
	log.Printf("%s %s escalation %v", *e.EventType, e.EventID, e.Escalation["id"])
	return nil
}

func answer(w http.ResponseWriter, status int, key, value string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{key: value})
}

func receive(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		answer(w, http.StatusMethodNotAllowed, "error", "method not allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes)) // the raw bytes, exactly as signed
	if err != nil {
		answer(w, http.StatusRequestEntityTooLarge, "error", "body too large")
		return
	}
	if problem := refusal(body, r.Header); problem != "" {
		answer(w, http.StatusUnauthorized, "error", problem)
		return
	}
	var e event // only now: the bytes are ours
	if json.Unmarshal(body, &e) != nil || e.EventType == nil || e.Escalation == nil {
		answer(w, http.StatusBadRequest, "error", "not a qlar event")
		return
	}
	if !handled[*e.EventType] {
		answer(w, http.StatusOK, "status", "skipped") // new event types may appear: ignore them
		return
	}
	id := e.EventID
	if id == "" {
		id = r.Header.Get("Webhook-Id")
	}
	seenMu.Lock()
	if seen[id] {
		seenMu.Unlock()
		answer(w, http.StatusOK, "status", "duplicate") // a retry of an event already processed
		return
	}
	seen[id] = true
	seenMu.Unlock()
	if err := handle(e); err != nil {
		seenMu.Lock()
		delete(seen, id) // let qlar's retry be processed
		seenMu.Unlock()
		answer(w, http.StatusInternalServerError, "error", "processing failed")
		return
	}
	answer(w, http.StatusOK, "status", "processed")
}

func main() {
	if secret == "" {
		log.Fatal("set QLAR_WEBHOOK_SECRET")
	}
	host, port := os.Getenv("HOST"), os.Getenv("PORT")
	if host == "" {
		host = "0.0.0.0"
	}
	if port == "" {
		port = "8000"
	}
	server := &http.Server{Addr: host + ":" + port, Handler: http.HandlerFunc(receive),
		ReadHeaderTimeout: 10 * time.Second}
	log.Printf("listening on %s", server.Addr)
	log.Fatal(server.ListenAndServe())
}
