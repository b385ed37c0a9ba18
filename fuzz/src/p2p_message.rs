//! P2P framing and every message body: the bytes a peer sends, through the node's codec.
//!
//! Input: one flags byte, then a byte stream as it would arrive on a socket (any number of
//! frames). Flags bit 0 marks the handshake done (the larger size limit applies); bit 1 has
//! the target write the correct checksum into each complete frame first, so that mutated
//! payloads reach the body parsers instead of stopping at the checksum (with it clear the
//! checksum check itself is fuzzed). Frames are decoded in order with the regtest magic until
//! the codec wants more bytes or refuses one; the codec dispatches each body on its command.
//!
//! Checked: no panic, and every decoded message encodes to a frame that decodes to the same
//! message with nothing left over.

use bytes::BytesMut;
use chaincore::hash::sha256d;
use chaincore::p2p::{Codec, Message};
use chaincore::Network;
use tokio_util::codec::{Decoder, Encoder};

/// Frame header: magic (4), command (12), length (4), checksum (4).
const HEADER: usize = 24;

/// Runs one input (see the module docs).
pub fn run(data: &[u8]) {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let magic = Network::Regtest.params().magic;
    let mut codec = Codec::new(magic);
    codec.handshake_done = flags & 1 != 0;
    let mut buf = BytesMut::from(stream);
    if flags & 2 != 0 {
        fix_checksums(&mut buf);
    }
    while let Ok(Some(msg)) = codec.decode(&mut buf) {
        round_trip(magic, msg);
    }
}

/// Writes SHA-256d(payload)[..4] into the checksum field of every complete frame.
fn fix_checksums(buf: &mut [u8]) {
    let mut at = 0;
    while let Some(header) = buf.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
        let Some(end) = (at + HEADER).checked_add(len).filter(|&e| e <= buf.len()) else {
            return;
        };
        let sum = sha256d(&buf[at + HEADER..end]);
        buf[at + 20..at + HEADER].copy_from_slice(&sum[..4]);
        at = end;
    }
}

/// Encodes `msg` and decodes it again: it must come back unchanged, using every byte.
fn round_trip(magic: [u8; 4], msg: Message) {
    let mut codec = Codec::new(magic);
    codec.handshake_done = true;
    let mut frame = BytesMut::new();
    if let Err(e) = codec.encode(msg.clone(), &mut frame) {
        panic!("cannot encode a decoded {}: {e}", msg.command());
    }
    match codec.decode(&mut frame) {
        Ok(Some(back)) => assert_eq!(back, msg, "a decoded message re-encodes differently"),
        other => panic!("a re-encoded {} does not decode: {other:?}", msg.command()),
    }
    assert!(frame.is_empty(), "bytes left after a re-encoded message");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With flags bit 1 a frame whose checksum was broken by a mutation still reaches its
    /// body's parser.
    #[test]
    fn fixed_checksums_let_mutated_payloads_through() {
        let mut codec = Codec::new(Network::Regtest.params().magic);
        let mut frame = BytesMut::new();
        codec.encode(Message::Ping(7), &mut frame).unwrap();
        frame[24] ^= 1;
        let mut broken = frame.clone();
        assert!(codec.decode(&mut broken).is_err());
        fix_checksums(&mut frame);
        assert_eq!(codec.decode(&mut frame).unwrap(), Some(Message::Ping(6)));
    }
}
