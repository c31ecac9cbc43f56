// Package imcodec encodes and decodes the message bodies used in SIP instant
// messaging, independently of any SIP stack.
//
// It covers:
//
//   - Content-Type handling: [MediaType], [AcceptsType], [SplitAcceptHeader]
//     and the Type* constants.
//   - The SDP of Microsoft-style IM sessions (INVITE with m=message ... sip):
//     [ParseOffer], [AnswerOffer] (one answer line per offered m= line) and
//     [Answer].
//   - Text bodies: text/plain in any common charset, text/html (tags
//     stripped by [StripHTML]) and multipart/alternative, related or mixed
//     with Content-Transfer-Encoding: [DecodeText], [DecodeCharset].
//   - Typing notifications: the OCS/Lync KeyboardActivity INFO body
//     ([ParseKeyboardActivity], [KeyboardActivity]) and RFC 3994
//     isComposing ([ParseIsComposing], [IsComposing]).
//   - RFC 3862 CPIM and RFC 5438 IMDN as sent by Linphone: [ParseCPIM],
//     [ParseIMDN], [DeliveryNotification], and [Inflate] for
//     Content-Encoding: deflate bodies.
//   - The first message carried in an OCS INVITE's ms-text-format header:
//     [MSBody].
//   - Splitting long replies into several messages: [Split].
//
// All functions are pure, safe for concurrent use and never panic on
// attacker-controlled input; the work they do is bounded (multipart parts,
// nesting depth, XML tokens, inflated size). Parse failures wrap
// [ErrMalformed] (a runtime answers 400) and media types or charsets that are
// not decoded wrap [ErrUnsupportedType] (a runtime answers 415).
package imcodec
