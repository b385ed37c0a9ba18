//! A hand-driven P2P peer on a raw socket speaking Bitcoin's framing, for sending what honest
//! nodes never would.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chaincore::Network;

use crate::Node;

/// How long one read from the node may block before the test gives up on it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A raw P2P connection to a node.
pub struct RawPeer {
    stream: TcpStream,
    magic: [u8; 4],
    nonce: u64,
}

impl RawPeer {
    /// Connects without a handshake.
    pub fn open(node: &Node) -> RawPeer {
        let stream = TcpStream::connect(node.p2p_addr()).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        RawPeer {
            stream,
            magic: Network::Regtest.params().magic,
            nonce: 0x5eed_0000,
        }
    }

    /// Connects and completes the version handshake.
    pub fn connect(node: &Node) -> RawPeer {
        let mut peer = RawPeer::open(node);
        let mut version = Vec::new();
        version.extend_from_slice(&70_016i32.to_le_bytes());
        version.extend_from_slice(&0u64.to_le_bytes());
        version.extend_from_slice(&0i64.to_le_bytes());
        version.extend_from_slice(&[0; 52]);
        version.extend_from_slice(&0x1234_5678u64.to_le_bytes());
        version.push(0);
        version.extend_from_slice(&0i32.to_le_bytes());
        version.push(1);
        version.extend_from_slice(Network::Regtest.genesis_hash().as_bytes());
        peer.send("version", &version);
        peer.send("verack", &[]);
        // Read until the node's verack.
        while peer.recv().map(|(c, _)| c) != Some("verack".into()) {}
        peer
    }

    /// Sends one framed message (a write error is ignored: the node may have hung up, which
    /// the next read shows).
    pub fn send(&mut self, command: &str, payload: &[u8]) {
        let mut frame = self.magic.to_vec();
        let mut name = [0u8; 12];
        name[..command.len()].copy_from_slice(command.as_bytes());
        frame.extend_from_slice(&name);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&chaincore::hash::sha256d(payload)[..4]);
        frame.extend_from_slice(payload);
        let _ = self.stream.write_all(&frame);
    }

    /// The next message, or None once the node closed the connection (or a read timed out).
    pub fn recv(&mut self) -> Option<(String, Vec<u8>)> {
        self.recv_or_timeout().ok().flatten()
    }

    /// The next message; `Ok(None)` once the node closed the connection, `Err` if it sent
    /// nothing for the read timeout.
    fn recv_or_timeout(&mut self) -> Result<Option<(String, Vec<u8>)>, std::io::Error> {
        let mut head = [0u8; 24];
        if let Err(e) = self.stream.read_exact(&mut head) {
            return timed_out(e);
        }
        let len = u32::from_le_bytes(head[16..20].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len];
        if let Err(e) = self.stream.read_exact(&mut payload) {
            return timed_out(e);
        }
        let name = String::from_utf8_lossy(&head[4..16])
            .trim_end_matches('\0')
            .to_string();
        Ok(Some((name, payload)))
    }

    /// True once the node hangs up (reading everything it still sends).
    pub fn closed(&mut self) -> bool {
        for _ in 0..10_000 {
            if self.recv().is_none() {
                return true;
            }
        }
        false
    }

    /// True if the node still answers a ping on this connection.
    pub fn answers_ping(&mut self) -> bool {
        self.send("ping", &42u64.to_le_bytes());
        while let Some((command, payload)) = self.recv() {
            if command == "pong" && payload == 42u64.to_le_bytes() {
                return true;
            }
        }
        false
    }

    /// Sends a ping with a fresh nonce and reads until its pong (true) or until the node hangs
    /// up (false). The node handles a peer's messages in order, so a pong means it has dealt
    /// with everything sent before the ping. Panics if the node neither answers nor hangs up
    /// within the read timeout.
    pub fn sync(&mut self) -> bool {
        self.nonce += 1;
        let nonce = self.nonce.to_le_bytes();
        self.send("ping", &nonce);
        loop {
            match self.recv_or_timeout() {
                Ok(Some((command, payload))) if command == "pong" && payload == nonce => {
                    return true
                }
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(e) => panic!("the node neither answered a ping nor hung up: {e}"),
            }
        }
    }
}

/// A read error as [`RawPeer::recv_or_timeout`] reports it: a timeout is an error, anything
/// else (end of stream, reset) means the connection is closed.
fn timed_out<T>(e: std::io::Error) -> Result<Option<T>, std::io::Error> {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Err(e),
        _ => Ok(None),
    }
}
