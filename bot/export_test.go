package bot

import "github.com/emiago/sipgo/sip"

// TransportLayerForTest exposes the bot's SIP transport layer to the external tests, which
// read connection reference counts from it.
func (b *Bot) TransportLayerForTest() *sip.TransportLayer { return b.ua.TransportLayer() }
