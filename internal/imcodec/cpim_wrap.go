package imcodec

import (
	"bytes"
	"strings"
	"time"
)

// WrapCPIM wraps an inner body in a message/cpim envelope (RFC 3862) with the imdn namespace
// declared (RFC 5438): From and To are addresses such as "<sip:bot@example.com>", messageID
// becomes imdn.Message-ID, and disposition (may be empty) is the
// imdn.Disposition-Notification value. Header values are stripped of CR and LF.
func WrapCPIM(from, to, messageID, disposition, contentType string, body []byte, at time.Time) []byte {
	clean := func(s string) string { return strings.NewReplacer("\r", "", "\n", "").Replace(s) }
	var b bytes.Buffer
	b.WriteString("From: " + clean(from) + "\r\n")
	b.WriteString("To: " + clean(to) + "\r\n")
	b.WriteString("DateTime: " + at.UTC().Format(time.RFC3339) + "\r\n")
	b.WriteString("NS: imdn <" + NSIMDNHeaders + ">\r\n")
	b.WriteString("imdn.Message-ID: " + clean(messageID) + "\r\n")
	if disposition != "" {
		b.WriteString("imdn.Disposition-Notification: " + clean(disposition) + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString("Content-Type: " + clean(contentType) + "\r\n")
	if contentType == TypeIMDN {
		b.WriteString("Content-Disposition: notification\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}
