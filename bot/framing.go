package bot

import (
	"bytes"
	"strconv"
)

// A framer follows the message boundaries of a stream, reading the bytes sipgo reads, so
// that a connection can be timed by message (guardConn): how long the message under way
// has taken, how long since the last one. It does not parse; it only finds where each
// message ends, as sipgo's parser does.
type framer interface {
	// feed takes the next bytes of the stream.
	feed(p []byte) progress
}

// progress is what one read of a stream carried.
type progress struct {
	messages  int  // messages that ended in it
	keepAlive bool // a keep-alive between messages: CRLF (RFC 5626 §3.5.1), a WebSocket ping
	inMessage bool // it ends inside a message
	began     bool // the message it ends inside began in it
	upgraded  bool // a WebSocket upgrade request ended in it
}

// maxHeaderLine is as much of a header line as a framer keeps: enough for any
// Content-Length a client writes.
const maxHeaderLine = 128

// lineScanner splits the head of a message (a start line, header lines, an empty line) as
// sipgo's parser does: a line ends at CRLF, and a line that begins with a space or a tab
// continues the header line before it (RFC 3261 §7.3.1). It keeps the first maxHeaderLine
// bytes of each header.
type lineScanner struct {
	line      []byte // the physical line under way, without its CRLF
	n         int    // its length, of which line keeps the first maxHeaderLine bytes
	cr        bool   // the bytes read so far end with a CR
	header    []byte // the last header line, which a continuation may still extend
	startLine bool   // the start line has ended
	atStart   bool   // at the start of a physical line
}

func (s *lineScanner) reset() {
	*s = lineScanner{line: s.line[:0], header: s.header[:0], atStart: true}
}

// scan reads head bytes from p, calling header for every complete header line. At the
// empty line that ends the head it returns how many bytes of p it read and true.
func (s *lineScanner) scan(p []byte, header func([]byte)) (int, bool) {
	for i := 0; i < len(p); {
		if s.atStart {
			s.atStart = false
			if p[i] != ' ' && p[i] != '\t' && len(s.header) > 0 {
				header(s.header)
				s.header = s.header[:0]
			}
		}
		end := -1 // where the line's LF is
		for j := i; j < len(p); {
			k := bytes.IndexByte(p[j:], '\n')
			if k < 0 {
				break
			}
			k += j
			if (k > i && p[k-1] == '\r') || (k == i && s.cr) {
				end = k
				break
			}
			j = k + 1
		}
		if end < 0 {
			s.add(p[i:])
			return len(p), false
		}
		s.add(p[i:end])
		i = end + 1
		line := bytes.TrimSuffix(s.line, []byte("\r"))
		switch {
		case s.n == 1: // the empty line
			if len(s.header) > 0 {
				header(s.header)
			}
			s.reset()
			return i, true
		case !s.startLine:
			s.startLine = true
		case line[0] == ' ' || line[0] == '\t':
			// A continuation: sipgo joins it to the line before with one space.
			s.header = append(s.header, ' ')
			s.header = append(s.header, bytes.TrimLeft(line, " \t")...)
		default:
			s.header = append(s.header[:0], line...)
		}
		s.header = s.header[:min(len(s.header), maxHeaderLine)]
		s.line, s.n, s.cr, s.atStart = s.line[:0], 0, false, true
	}
	return len(p), false
}

// add appends b to the physical line under way.
func (s *lineScanner) add(b []byte) {
	if len(b) == 0 {
		return
	}
	if room := maxHeaderLine - len(s.line); room > 0 {
		s.line = append(s.line, b[:min(room, len(b))]...)
	}
	s.n += len(b)
	s.cr = b[len(b)-1] == '\r'
}

// sipFramer frames SIP over TCP or TLS: a message is a start line and headers up to an
// empty line, then Content-Length bytes of body (RFC 3261 §7.5, §18.3). CR and LF between
// messages are keep-alives.
type sipFramer struct {
	state   int // framerBetween, framerHeaders or framerBody
	lines   lineScanner
	length  uint64 // the Content-Length of the message under way
	pending uint64 // body bytes still to come
}

const (
	framerBetween = iota
	framerHeaders
	framerBody
)

func (f *sipFramer) feed(p []byte) progress {
	var pr progress
	for len(p) > 0 {
		switch f.state {
		case framerBetween:
			i := 0
			for i < len(p) && (p[i] == '\r' || p[i] == '\n' || p[i] == 0) {
				i++
			}
			if i > 0 {
				pr.keepAlive = true
			}
			p = p[i:]
			if len(p) > 0 {
				f.state, f.length = framerHeaders, 0
				f.lines.reset()
				pr.began = true
			}
		case framerHeaders:
			n, done := f.lines.scan(p, f.header)
			p = p[n:]
			if done {
				f.state, f.pending = framerBody, f.length
			}
		case framerBody:
			n := min(f.pending, uint64(len(p)))
			f.pending -= n
			p = p[n:]
		}
		if f.state == framerBody && f.pending == 0 {
			f.state = framerBetween
			pr.messages++
			pr.began = false
		}
	}
	pr.inMessage = f.state != framerBetween
	pr.began = pr.began && pr.inMessage
	return pr
}

// header notes a Content-Length (or its compact form l); the last one counts, as in sipgo.
func (f *sipFramer) header(h []byte) {
	name, value, ok := bytes.Cut(h, []byte(":"))
	if !ok {
		return
	}
	name = bytes.TrimSpace(name)
	if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
		return
	}
	if n, err := strconv.ParseUint(string(bytes.TrimSpace(value)), 10, 32); err == nil {
		f.length = n
	}
}

// wsFramer frames SIP over WebSocket (RFC 7118): the HTTP upgrade request, then frames
// (RFC 6455 §5.2). A message is a data frame with FIN set, with the fragments before it; a
// control frame between messages (a ping) is a keep-alive. The upgrade request is not a
// message: it is part of opening the connection.
type wsFramer struct {
	upgraded bool        // the upgrade request has ended
	lines    lineScanner // of the upgrade request
	started  bool        // the upgrade request has begun
	head     [14]byte    // the frame header under way
	headLen  int
	pending  uint64 // payload bytes of the frame under way still to come
	inFrame  bool   // a frame's payload is under way
	inData   bool   // a fragmented data message is under way

	origin    string // the upgrade request's Origin header (at most maxHeaderLine bytes of its line)
	hasOrigin bool
}

func (f *wsFramer) feed(p []byte) progress {
	var pr progress
	if !f.upgraded {
		if !f.started && len(p) > 0 {
			f.started, pr.began = true, true
			f.lines.reset()
		}
		n, done := f.lines.scan(p, func(line []byte) {
			name, value, ok := bytes.Cut(line, []byte(":"))
			if ok && !f.hasOrigin && bytes.EqualFold(bytes.TrimSpace(name), []byte("Origin")) {
				f.origin, f.hasOrigin = string(bytes.TrimSpace(value)), true
			}
		})
		p = p[n:]
		f.upgraded = done
		if done {
			pr.began, pr.upgraded = false, true
		}
	}
	for f.upgraded && len(p) > 0 {
		if !f.inFrame {
			if f.headLen == 0 && !f.inData {
				pr.began = true
			}
			need := f.headerSize()
			n := copy(f.head[f.headLen:need], p)
			f.headLen += n
			p = p[n:]
			if f.headLen < 2 || f.headLen < f.headerSize() {
				continue
			}
			f.inFrame, f.pending = true, f.payloadLen()
		}
		n := min(f.pending, uint64(len(p)))
		f.pending -= n
		p = p[n:]
		if f.pending == 0 {
			f.endFrame(&pr)
		}
	}
	pr.inMessage = (!f.upgraded && f.started) || f.headLen > 0 || f.inFrame || f.inData
	pr.began = pr.began && pr.inMessage
	return pr
}

// headerSize is the length of the frame header under way, as far as its first two bytes
// tell.
func (f *wsFramer) headerSize() int {
	if f.headLen < 2 {
		return 2
	}
	n := 2
	switch f.head[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.head[1]&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

func (f *wsFramer) payloadLen() uint64 {
	switch l := f.head[1] & 0x7f; l {
	case 126:
		return uint64(f.head[2])<<8 | uint64(f.head[3])
	case 127:
		var n uint64
		for _, b := range f.head[2:10] {
			n = n<<8 | uint64(b)
		}
		return n
	default:
		return uint64(l)
	}
}

func (f *wsFramer) endFrame(pr *progress) {
	fin, opcode := f.head[0]&0x80 != 0, f.head[0]&0x0f
	f.inFrame, f.headLen = false, 0
	switch {
	case opcode >= 8: // close, ping, pong
		if !f.inData {
			pr.keepAlive = true
			pr.began = false
		}
	case fin:
		f.inData = false
		pr.messages++
		pr.began = false
	default:
		f.inData = true
	}
}
